"""A non-editable install, used from outside the repository: the shipped configs are listed and run by name, every
registry entry loads (weights from ``$METAZOO_CHECKPOINTS``), one loads from a ``file://`` URL with no weights on
disk, and a wrong sha256 is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from support import ROOT

# What a wheel is built from; the weights stay out (they resolve from METAZOO_CHECKPOINTS or a URL).
SOURCES = ["pyproject.toml", "setup.py", "README.md", "zoo", "datamodules", "callbacks", "safefiles", "configs",
           "checkpoints/registry.yaml"]

CHECK = textwrap.dedent('''
    import contextlib, io, json, os, sys
    from pathlib import Path
    import yaml
    import zoo, zoo.hub.pretrained as pretrained
    from zoo.cli.commands import main

    target, url_registry = Path(sys.argv[1]), Path(sys.argv[2])
    report = {"zoo": zoo.__file__, "entries": zoo.list_pretrained(), "loaded": []}
    report["configs"] = sorted({str(pretrained.registry_entry(n).config_path.relative_to(target))
                                for n in report["entries"] if pretrained.registry_entry(n).config_path.is_file()})
    for name in report["entries"]:
        zoo.load_pretrained(name)
        report["loaded"].append(name)

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["fit", "--config", "protonet/glyphs", "--print_config"])
    report["printed"] = yaml.safe_load(out.getvalue())

    # The weights now only behind a URL: a registry copy whose entries have a file:// url.
    del os.environ["METAZOO_CHECKPOINTS"]
    pretrained.REGISTRY = url_registry
    report["from_url"] = zoo.load_pretrained("by-url").training is False
    try:
        zoo.load_pretrained("wrong-sha")
    except pretrained.ChecksumError as err:
        report["refused"] = str(err)
    report["downloaded"] = sorted(p.name for p in Path(os.environ["METAZOO_DATA"]).rglob("*.safetensors"))
    import datamodules.relations.fewrel as fewrel  # the shipped FewRel files, read (sha256 checked) from the install
    report["nyt_semeval"] = [str(fewrel.SHIPPED), {k: len(v) for k, v in fewrel.nyt_semeval_sources(10).items()}]
    print("REPORT " + json.dumps(report))
''')


def run(args, cwd, env, timeout=600):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args[:4]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.timeout(600)
def test_a_non_editable_install_lists_configs_and_loads_every_checkpoint(tmp_path):
    import yaml

    source, target, outside = tmp_path / "source", tmp_path / "target", tmp_path / "elsewhere"
    for rel in SOURCES:
        copy = shutil.copytree if (ROOT / rel).is_dir() else shutil.copy
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        copy(ROOT / rel, source / rel, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                          if (ROOT / rel).is_dir() else {}))
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
         str(target), str(source)], cwd=tmp_path, env=dict(os.environ, PIP_NO_INDEX="1"))
    assert not (target / "zoo" / "checkpoints" / "protonet-conv4-glyphs-5w1s.safetensors").exists()
    # every package is installed: the role folders of zoo/ and the bottom-layer safefiles (setup.py's packages)
    assert [p for p in ("safefiles", "zoo/methods", "zoo/nn", "zoo/training", "zoo/hub", "zoo/cli")
            if not (target / p / "__init__.py").is_file()] == []
    shipped = target / "datamodules" / "relations" / "data" / "fewrel"  # FewRel NYT/SemEval beside their licence
    assert {p.name for p in shipped.iterdir()} >= {"val_nyt.json", "val_semeval.json", "pid2name.json", "LICENSE",
                                                   "README.md"}
    omniglot = target / "datamodules" / "images" / "data" / "omniglot"  # OmniglotSmall trains with no download
    assert {p.name for p in omniglot.iterdir()} == {"all_runs.zip", "images_background_small1.zip",
                                                    "images_background_small2.zip", "LICENSE", "README.md"}

    weights = tmp_path / "weights"  # a copy of the weights, the only place they are
    shutil.copytree(ROOT / "checkpoints", weights, ignore=shutil.ignore_patterns("*.yaml", "*.lock"))
    registry = yaml.safe_load((ROOT / "checkpoints" / "registry.yaml").read_text())
    entry = registry["protonet-conv4-glyphs-5w1s"]
    url = (weights / "protonet-conv4-glyphs-5w1s.safetensors").as_uri()
    # weights/ names a path that does not exist under the registry copy's parent, so only the url can serve them
    url_registry = tmp_path / "url-registry" / "checkpoints" / "registry.yaml"
    url_registry.parent.mkdir(parents=True)
    shutil.copy(weights / "protonet-conv4-glyphs-5w1s.safetensors", tmp_path / "tampered.safetensors")
    url_registry.write_text(yaml.safe_dump({"by-url": {**entry, "url": url}, "wrong-sha": {
        **entry, "url": (tmp_path / "tampered.safetensors").as_uri(), "sha256": "0" * 64}}))

    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "METAZOO_REGISTRY")}
    env.update(PYTHONPATH=str(target), METAZOO_CHECKPOINTS=str(weights), METAZOO_DATA=str(tmp_path / "cache"),
               WANDB_MODE="offline", WANDB_DIR=str(tmp_path), OMP_NUM_THREADS="1")

    listed = run([str(target / "bin" / "zoo"), "configs"], cwd=outside, env=env)
    assert str(target / "zoo" / "configs") in listed
    assert {"protonet/glyphs", "raml/wordnet", "trainer/default"} <= {line.split()[0] for line in
                                                                      listed.splitlines()[1:]}

    stdout = run([sys.executable, "-c", CHECK, str(target), str(url_registry)], cwd=outside, env=env)
    report = json.loads(next(line for line in stdout.splitlines() if line.startswith("REPORT "))[7:])
    assert report["zoo"].startswith(str(target)), "the installed package, not the repository, was imported"
    assert report["entries"] == sorted(registry) and report["loaded"] == report["entries"]
    # every entry's config resolves inside the installed package
    assert report["configs"] == sorted({f"zoo/{e['config']}" for e in registry.values()})
    printed = report["printed"]
    assert printed["model"]["class_path"] == "zoo.ProtoNet"
    assert printed["trainer"]["logger"]["init_args"]["group"] == "protonet-glyphs-5w1s"  # composed from __base__
    assert report["from_url"]
    assert report["downloaded"] == ["protonet-conv4-glyphs-5w1s.safetensors"]  # the refused download was not kept
    assert "sha256" in report["refused"] and "0" * 64 in report["refused"]
    assert report["nyt_semeval"] == [str(shipped), {"train": 220, "val": 100, "test": 100}]
