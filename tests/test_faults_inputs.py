"""Fault injection, inputs (issue 23): artifact paths, read-only and empty caches, readers and tools whose errors
name their file, report output and escaping, NAP weights paths, and imports without ``fcntl``. Each test fails on
the code before the fix. Runs (signals, non-finite losses, failed runs, checkpoints): ``test_faults.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from support import ROOT, zoo_env
from test_faults import GLYPHS, TINY, csv_logger, glyph_folders, http_dir, malicious_checkpoint  # noqa: F401 (fixture)
from zoo.cli.commands import main


# -- artifact references stay inside the cache -----------------------------------------------------------------
@pytest.mark.parametrize("ref", [
    "wandb-artifact://e/p/n:v0/x/../../../victim.txt",
    "wandb-artifact://e/p/n:v0/../weights.safetensors",
    "wandb-artifact://e/p/n:v0/./weights.safetensors",
    "wandb-artifact://e/p/n:v0//etc/passwd",
    "wandb-artifact://../p/n:v0/weights.safetensors",
    "wandb-artifact://e/p/n:v0/C:/weights.safetensors",
    "wandb-artifact://e/p/n:v0/a\\..\\..\\b",
])
def test_artifact_references_that_leave_the_cache_are_refused_before_any_file_is_touched(ref, tmp_path):
    from zoo.hub.artifacts import resolve_artifact

    cache = tmp_path / "deep" / "cache"
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours")

    class NoNetwork:
        def artifact(self, path):
            raise AssertionError("the network was reached")

    with pytest.raises(ValueError, match="not allowed|outside the cache|expected wandb-artifact"):
        resolve_artifact(ref, "0" * 64, api=NoNetwork(), cache_dir=cache)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["victim.txt"]  # no lock file, no directory anywhere


def test_a_symlink_in_the_artifact_cache_cannot_redirect_a_file_outside(tmp_path):
    from zoo.hub.artifacts import artifact_cache_path

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "e--p--n--v0").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside the cache"):
        artifact_cache_path("wandb-artifact://e/p/n:v0/victim.txt", cache)
    assert artifact_cache_path("wandb-artifact://e/p/m:v1/w.safetensors", cache) == \
        cache / "e--p--m--v1" / "w.safetensors"


# -- caches: predict builds nothing, a read-only cache serves every command, files are 0644 ------------------
def test_predict_on_an_empty_cache_builds_nothing(glyphs_data, tmp_path, monkeypatch):
    from datamodules.images.glyphs import build as glyphs

    def refuse(*args, **kwargs):
        raise AssertionError("predict built the Glyphs dataset")

    monkeypatch.setattr(glyphs, "build_glyphs", refuse)
    monkeypatch.setattr(glyphs, "load_glyphs", refuse)
    support, query, _ = glyph_folders(glyphs_data, tmp_path / "images")
    empty = tmp_path / "empty-cache"
    main(["predict", "--config", GLYPHS, *csv_logger(tmp_path / "runs"), f"--data.cache_dir={empty}",
          f"--data.predict_support_dir={support}", f"--data.predict_query_dir={query}"])
    assert next((tmp_path / "runs").rglob("predictions.csv")).is_file()
    assert not empty.exists()


#: Run in a subprocess: an audit hook makes every write under the cache fail as on a read-only mount (EROFS) and
#: records it. It holds for root too (chmod does not stop root), and it names what the code tried to create.
READ_ONLY = textwrap.dedent("""
    import errno, os, sys
    CACHE = os.path.realpath(sys.argv[1])
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.chmod", "os.link", "os.symlink", "os.truncate",
              "os.utime", "os.chown", "shutil.rmtree", "shutil.copyfile"}
    attempts = []

    def inside(path):
        if isinstance(path, int):
            return False
        real = os.path.realpath(os.fsdecode(path))
        return real == CACHE or real.startswith(CACHE + os.sep)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writes = any(c in (mode or "") for c in "wax+") or (mode is None and flags is not None and flags & WRITE)
            paths = [path] if writes else []
        elif event in EVENTS:
            paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        else:
            return
        for p in paths:
            if inside(p):
                attempts.append(f"{event} {os.fsdecode(p)}")
                raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(p))

    sys.addaudithook(hook)
    import json
    from zoo.cli.commands import main
    for args in json.loads(sys.argv[2]):
        main(args)
    print("WRITES", json.dumps(attempts))
""")


def test_a_complete_read_only_cache_serves_every_command(glyphs_data, tmp_path):
    cache = Path(os.environ["METAZOO_DATA"])
    support, query, _ = glyph_folders(glyphs_data, tmp_path / "images")
    runs = ["--config", str(ROOT / "configs/logger/csv.yaml"), f"--trainer.logger.init_args.save_dir={tmp_path}"]
    commands = [["check", "--config", GLYPHS],
                ["fit", "--config", GLYPHS, *runs, *TINY, "--test_after_fit=true"],
                ["predict", "--config", GLYPHS, *runs, f"--data.predict_support_dir={support}",
                 f"--data.predict_query_dir={query}"]]
    proc = subprocess.run([sys.executable, "-c", READ_ONLY, str(cache), json.dumps(commands)], cwd=ROOT,
                          env=zoo_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "WRITES []" in proc.stdout
    assert list(tmp_path.rglob("predictions.csv")) and list(tmp_path.rglob("test_episodes.csv"))


def test_building_into_a_read_only_directory_says_why_and_where(tmp_path, monkeypatch):
    import safefiles as cache_mod

    def read_only(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache_mod, "file_lock", read_only)
    with pytest.raises(OSError, match=r"cannot build .*/b \(no manifest.json in .*\): its directory cannot be written"):
        cache_mod.cached_build(tmp_path / "b", {"v": 1}, lambda out: None)


def test_every_cache_file_is_0644_even_when_its_writer_makes_it_private(tmp_path):
    from safetensors.numpy import save_file

    from safefiles import cached_build

    def build(out: Path) -> None:
        save_file({"x": np.zeros(3)}, str(out / "data.safetensors"))  # safetensors creates files 0600
        (out / "sub").mkdir()
        (out / "sub" / "more.txt").write_text("x")
        os.chmod(out / "sub" / "more.txt", 0o600)

    target = cached_build(tmp_path / "build", {"v": 1}, build)
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in target.rglob("*")} == {
        "data.safetensors": "0o644", "sub": "0o755", "more.txt": "0o644", "manifest.json": "0o644"}


# -- zoo publish finds the weights where load_pretrained does --------------------------------------------------
def test_publish_resolves_weights_through_metazoo_checkpoints(tmp_path, monkeypatch, capsys):
    from safefiles import sha256_file
    from zoo.hub import pretrained
    from zoo.cli import wandb_logger
    from zoo.cli.publish import main as publish_main

    elsewhere = tmp_path / "downloaded"
    elsewhere.mkdir()
    weights = elsewhere / "tiny.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(weights))
    registry = tmp_path / "repo" / "checkpoints" / "registry.yaml"
    registry.parent.mkdir(parents=True)
    registry.write_text(yaml.safe_dump({"tiny": {
        "system": "protonet", "weights": "checkpoints/tiny.safetensors", "sha256": sha256_file(weights),
        "model": {"class_path": "zoo.ProtoNet"}, "config": "configs/x.yaml", "setting": "5w1s"}}))
    monkeypatch.setattr(pretrained, "REGISTRY", registry)
    monkeypatch.setattr(wandb_logger, "wandb_credentials_configured", lambda: False)
    monkeypatch.delenv("METAZOO_CHECKPOINTS", raising=False)
    assert publish_main(["tiny"]) == 2
    assert "weights file is missing (looked in" in capsys.readouterr().err  # not a raw FileNotFoundError
    monkeypatch.setenv("METAZOO_CHECKPOINTS", str(elsewhere))
    assert publish_main(["tiny"]) == 2
    assert "publishing needs W&B credentials" in capsys.readouterr().err  # found and verified, then stopped


# -- errors that name their file ---------------------------------------------------------------------------------
def test_fewrel_entity_that_is_an_object_names_file_relation_and_field(tmp_path):
    from datamodules.relations.fewrel import read_fewrel_json

    path = tmp_path / "train_wiki.json"
    path.write_text(json.dumps({"P1": [{"tokens": ["a", "b"], "h": {"name": "a"}, "t": ["b", "Q2", [[1]]]}]}))
    with pytest.raises(ValueError, match=rf"{path}: relation 'P1', instance 0: 'h' must be \[name, id"):
        read_fewrel_json(path)


def test_hpob_space_that_is_not_a_mapping_names_file_and_space(tmp_path):
    from datamodules.bo.hpob import read_bo_initializations, read_hpob

    (tmp_path / "meta-test-dataset.json").write_text(json.dumps({"5860": [[0.1, 0.2]]}))
    with pytest.raises(ValueError, match=r"meta-test-dataset.json: search space '5860' must map dataset ids"):
        read_hpob(tmp_path, "test", "5860")
    (tmp_path / "bo-initializations.json").write_text(json.dumps({"5860": ["test0"]}))
    with pytest.raises(ValueError, match=r"bo-initializations.json: search space '5860' must map each dataset"):
        read_bo_initializations(tmp_path, "5860")


def fake_run(root: Path, name: str = "version_0", model: str = "zoo.ProtoNet", acc: float = 0.5) -> Path:
    """A finished run directory as the zoo writes it: config.yaml, test_episodes.csv and .json."""
    run = root / "csv" / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"class_path": model, "init_args": {"lr": 0.1}},
                                                     "data": {"class_path": "datamodules.images.GlyphsDataModule"}}))
    (run / "test_episodes.csv").write_text("episode,acc,loss\n" + "".join(f"{i},{acc + i / 100},1.0\n"
                                                                           for i in range(4)))
    (run / "test_episodes.json").write_text(json.dumps({"hash": "a" * 64, "episodes": 4, "dataset": "Glyphs"}))
    return run


@pytest.mark.parametrize("tool", ["report", "compare"])
@pytest.mark.parametrize("file, content, expected", [
    ("config.yaml", "model: [unclosed\n", r"config.yaml: cannot be read as YAML"),
    ("config.yaml", "- a\n- b\n", r"config.yaml: expected a mapping"),
    ("test_episodes.json", '{"hash": "a", "episodes": }', r"test_episodes.json:1: not valid JSON"),
    ("test_episodes.json", "[1, 2]", r"test_episodes.json: expected an object"),
])
def test_report_and_compare_errors_name_the_file(tool, file, content, expected, tmp_path, capsys):
    a, b = fake_run(tmp_path), fake_run(tmp_path, "version_1")
    (a / file).write_text(content)
    args = [str(a), str(b)] + (["--output", str(tmp_path / "r.html")] if tool == "report" else [])
    with pytest.raises(SystemExit) as info:
        main([tool, *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert str(a / file) in err and re.search(expected, err), err


def test_predict_names_every_unreadable_image(glyphs_data, tmp_path):
    from datamodules.images import ImageReadError

    support, query, _ = glyph_folders(glyphs_data, tmp_path / "images")
    bad = [query / "broken-1.png", query / "broken-2.png"]
    bad[0].write_bytes(b"not an image")
    good = next(query.glob("q*.png")).read_bytes()
    bad[1].write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(ImageReadError, match="2 image") as info:
        main(["predict", "--config", GLYPHS, *csv_logger(tmp_path / "runs"), f"--data.predict_support_dir={support}",
              f"--data.predict_query_dir={query}"])
    assert all(str(p) in str(info.value) for p in bad)


def test_a_batch_with_several_unreadable_images_names_them_all(tmp_path):
    from datamodules.images import ImageReadError, ImageSource

    files = [tmp_path / f"{i}.png" for i in range(10)]
    for f in files:
        f.write_bytes(b"junk")
    src = ImageSource(files, [0] * 10, {0: "a"}, image_size=8, num_threads=2)
    with pytest.raises(ImageReadError, match="10 images cannot be read") as info:
        src.load_many(torch.arange(10))
    assert all(str(f) in str(info.value) for f in files)


# -- zoo report: output names and escaping -------------------------------------------------------------------------
def test_report_output_md_writes_html_beside_it_and_a_directory_is_refused(tmp_path, capsys):
    run = fake_run(tmp_path)
    main(["report", str(run), "--output", str(tmp_path / "summary.md")])
    assert f"wrote {tmp_path / 'summary.html'} and {tmp_path / 'summary.md'}" in capsys.readouterr().out
    assert (tmp_path / "summary.html").read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "summary.md").read_text().startswith("# Metazoo report")
    with pytest.raises(SystemExit):
        main(["report", str(run), "--output", str(tmp_path)])
    assert f"--output {tmp_path} is a directory" in capsys.readouterr().err


def test_report_markdown_escapes_html_from_configs_and_names(tmp_path):
    from zoo.cli.report import write_report

    evil = "<img src=x onerror=alert(1)>"
    runs = [fake_run(tmp_path, f"v{evil}", model=f"zoo.{evil}"), fake_run(tmp_path, "plain", acc=0.4)]
    _, md = write_report(runs, tmp_path / "out" / "report.html")
    text = md.read_text()
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text


# -- runs that fail ----------------------------------------------------------------------------------------------
def test_a_failed_fit_removes_its_empty_run_directory_and_marks_a_partial_one(tmp_path):
    from callbacks.run_dir import mark_unfinished
    from zoo.cli.runs import load_run

    run = tmp_path / "csv" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    trainer = SimpleNamespace(is_global_zero=True, checkpoint_callback=SimpleNamespace(dirpath=run / "checkpoints"),
                              current_epoch=0, global_step=0)
    assert mark_unfinished(trainer, ValueError("boom")) is None and not run.exists()
    fake_run(tmp_path)
    assert mark_unfinished(trainer, ValueError("boom")) == run / "failed.txt"
    assert load_run(run).unfinished == "fit failed: ValueError: boom"


# -- NAP weights go through the one loader, from a path or a URL -------------------------------------------------
def tiny_nap():
    from zoo.methods.nap import NAPModule, NAPNetwork

    return NAPModule(NAPNetwork(2, d_model=8, n_layers=1, n_heads=2, dim_feedforward=8))


def test_nap_init_from_reads_through_load_checkpoint(tmp_path):
    from zoo.hub.checkpoint_io import UntrustedCheckpointError

    evil = malicious_checkpoint(tmp_path / "evil.ckpt", tmp_path / "PWNED")
    with pytest.raises(UntrustedCheckpointError, match="evil.ckpt is not trusted") as info:
        tiny_nap().load_network_weights(evil)
    assert "weights_only=False" not in str(info.value) and not (tmp_path / "PWNED").exists()


def test_load_nap_accepts_a_url_like_ckpt_path(http_dir):
    from zoo.methods.bo import load_nap

    served, base = http_dir
    model = tiny_nap()
    torch.save({"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict(),
                "pytorch-lightning_version": "2.6.6"}, served / "nap.ckpt")
    loaded = load_nap(f"{base}/nap.ckpt")  # fetched into the cache first, like --ckpt_path
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


# -- the package imports (and locks) without fcntl, as on Windows ------------------------------------------------
def test_the_package_imports_and_locks_without_fcntl(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["fcntl"] = None  # `import fcntl` now fails, as on Windows
        import callbacks, datamodules, zoo, zoo.cli.lightning_cli
        from safefiles import file_lock
        with file_lock({str(tmp_path / "shared.yaml")!r}):
            print("locked")
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=zoo_env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "locked" in proc.stdout, proc.stderr[-3000:]
