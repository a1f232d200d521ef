"""W&B artifacts as a weights source (a local fake of the W&B API) and `zoo publish` (a fake wandb run)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from safefiles import ChecksumError
from zoo.hub.artifacts import parse_artifact_ref, resolve_artifact
from zoo.cli.publish import publish
from zoo.cli.commands import main
from zoo.hub.pretrained import registry_entry

REF = "wandb-artifact://me/metazoo/protonet-tiny:v2/weights.safetensors"
PAYLOAD = b"tensor bytes"
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class FakeApi:
    """``wandb.Api()`` as resolve_artifact uses it: ``artifact(path).download(root)`` writes the files."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requested = files, []

    def artifact(self, path: str):
        self.requested.append(path)
        api = self

        class Artifact:
            def download(self, root: str) -> str:
                for name, data in api.files.items():
                    (Path(root) / name).write_bytes(data)
                return root

        return Artifact()


def test_reference_parsing_names_the_expected_form():
    assert parse_artifact_ref(REF) == ("me/metazoo/protonet-tiny:v2", "weights.safetensors")
    with pytest.raises(ValueError, match="ENTITY/PROJECT/NAME:VERSION/FILE"):
        parse_artifact_ref("wandb-artifact://me/protonet-tiny/weights.safetensors")  # no project, no version


def test_downloads_once_then_serves_the_verified_copy(tmp_path):
    api = FakeApi({"weights.safetensors": PAYLOAD})
    path = resolve_artifact(REF, SHA, api=api, cache_dir=tmp_path)
    assert path.read_bytes() == PAYLOAD and api.requested == ["me/metazoo/protonet-tiny:v2"]
    assert resolve_artifact(REF, SHA, api=api, cache_dir=tmp_path) == path and len(api.requested) == 1
    assert [p.name for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".lock")] == [path.name]


def test_a_mismatching_download_is_refused_and_not_kept(tmp_path):
    with pytest.raises(ChecksumError, match=f"expected {'0' * 64}; nothing was kept"):
        resolve_artifact(REF, "0" * 64, api=FakeApi({"weights.safetensors": PAYLOAD}), cache_dir=tmp_path)
    assert not [p for p in tmp_path.rglob("*.safetensors")]


def test_a_replaced_cached_copy_is_an_error(tmp_path):
    path = resolve_artifact(REF, SHA, api=FakeApi({"weights.safetensors": PAYLOAD}), cache_dir=tmp_path)
    path.write_bytes(b"something else")
    with pytest.raises(ChecksumError, match="corrupt or was replaced"):
        resolve_artifact(REF, SHA, api=FakeApi({}), cache_dir=tmp_path)


def test_a_missing_file_names_what_the_artifact_holds(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"holds \['model.ckpt'\]"):
        resolve_artifact(REF, SHA, api=FakeApi({"model.ckpt": PAYLOAD}), cache_dir=tmp_path)


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for var in ("WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))


def test_publish_offline_says_so_and_uploads_nothing(no_credentials, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["publish", "protonet-conv4-glyphs-5w1s"])
    assert exit_info.value.code == 2
    assert "publishing needs W&B credentials" in capsys.readouterr().err


def test_publish_uploads_the_registry_file_with_its_entry_as_metadata(no_credentials, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    logged = {}

    class FakeArtifact:
        def __init__(self, name, type, description, metadata):
            logged.update(name=name, type=type, metadata=metadata, files=[])
            self.version = "v0"

        def add_file(self, path, name):
            logged["files"].append((path, name))

        def wait(self):
            logged["waited"] = True

    class FakeRun:
        entity, project = "me", "metazoo"

        def log_artifact(self, artifact):
            logged["artifact"] = artifact

        def finish(self):
            logged["finished"] = True

    monkeypatch.setattr(wandb, "Artifact", FakeArtifact)
    monkeypatch.setattr(wandb, "init", lambda **kw: logged.update(init=kw) or FakeRun())
    entry = registry_entry("protonet-conv4-glyphs-5w1s")
    ref = publish("protonet-conv4-glyphs-5w1s")
    assert ref == f"wandb-artifact://me/metazoo/protonet-conv4-glyphs-5w1s:v0/{entry.weights_path.name}"
    assert logged["init"]["mode"] == "online" and logged["type"] == "model" and logged["finished"]
    assert logged["files"] == [(str(entry.weights_path), entry.weights_path.name)]
    assert logged["metadata"]["sha256"] == entry.sha256 and logged["metadata"]["metrics"] == entry.metrics


def test_a_registry_entry_can_name_an_artifact_as_its_weights_url(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    import zoo.hub.artifacts
    from zoo.hub import pretrained

    entry = registry_entry("protonet-conv4-glyphs-5w1s")
    source = entry.weights_path
    monkeypatch.setattr(pretrained, "REGISTRY", tmp_path / "repo" / "checkpoints" / "registry.yaml")
    monkeypatch.delenv("METAZOO_CHECKPOINTS", raising=False)
    monkeypatch.setenv("METAZOO_DATA", str(tmp_path / "cache"))
    entry.url = f"wandb-artifact://me/metazoo/{entry.name}:v0/{source.name}"
    api = FakeApi({source.name: source.read_bytes()})
    real = zoo.hub.artifacts.resolve_artifact
    monkeypatch.setattr(zoo.hub.artifacts, "resolve_artifact", lambda ref, sha, **kw: real(ref, sha, api=api, **kw))
    path = pretrained.resolve_weights(entry)
    assert path.read_bytes() == source.read_bytes() and api.requested == [f"me/metazoo/{entry.name}:v0"]
    assert set(pretrained.verified_state_dict(entry)) == set(load_file(str(source)))  # verified, then read
