"""The file-safety module: atomic writes, fetch, and cached_build (build once, manifest, rebuild when stale)."""

from __future__ import annotations

import hashlib
import json
import stat
import threading
import time

import pytest

from safefiles import (
    MANIFEST_FILE, ChecksumError, atomic_path, atomic_write_bytes, atomic_write_text, build_problem, cached_build,
    fetch, spec_key,
)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _listing(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_atomic_writes_are_0644_and_replace_the_file(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_text(target, "one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and _mode(target) == 0o644
    assert _listing(target.parent) == ["a.json"]  # no temporary file left beside it


def test_atomic_path_on_error_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "weights.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer died")
    assert target.read_bytes() == b"old" and _listing(tmp_path) == ["weights.bin"]


def test_fetch_file_url_once_and_refuses_a_wrong_sha256(tmp_path):
    source = tmp_path / "src" / "w.bin"
    source.parent.mkdir()
    source.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    cache = tmp_path / "cache"
    got = fetch(source.as_uri(), sha256=digest, cache_dir=cache)
    assert got.read_bytes() == b"weights" and got.name == "w.bin" and _mode(got) == 0o644
    source.write_bytes(b"changed upstream")
    assert fetch(source.as_uri(), sha256=digest, cache_dir=cache) == got  # the cached copy, not a new download

    other = tmp_path / "src" / "x.bin"
    other.write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="nothing was kept"):
        fetch(other.as_uri(), sha256=digest, cache_dir=cache)
    assert [p.name for p in cache.rglob("*x.bin*")] == ["x.bin.lock"]  # neither the file nor a temporary copy

    got.write_bytes(b"corrupt")  # a cached copy that no longer matches is refused, not used
    with pytest.raises(ChecksumError, match="corrupt or was replaced"):
        fetch(source.as_uri(), sha256=digest, cache_dir=cache)
    with pytest.raises(ValueError, match="ftp://"):
        fetch("ftp://example.org/w.bin", cache_dir=cache)


class Builder:
    """A build_fn that writes two files (one in a subdirectory) and counts its calls."""

    def __init__(self, payload: bytes = b"data", delay: float = 0.0, fail: bool = False):
        self.payload, self.delay, self.fail, self.calls = payload, delay, fail, 0

    def __call__(self, out):
        self.calls += 1
        (out / "data.bin").write_bytes(self.payload)
        time.sleep(self.delay)
        if self.fail:
            raise KeyboardInterrupt  # also an interrupt, not only an Exception, must leave nothing behind
        (out / "sub").mkdir()
        (out / "sub" / "index.txt").write_text("i")
        return {"note": "extra field"}


def test_spec_key_is_order_independent():
    assert spec_key({"a": 1, "b": [1, 2]}) == spec_key({"b": [1, 2], "a": 1}) != spec_key({"a": 2, "b": [1, 2]})
    assert len(spec_key({})) == 16


def test_cached_build_builds_once_and_writes_the_manifest(tmp_path):
    spec = {"version": 1, "params": {"n": 3, "sizes": (1, 2)}}
    build = Builder()
    target = tmp_path / "cache" / spec_key(spec)
    assert cached_build(target, spec, build) == target
    assert cached_build(target, spec, build) == target and build.calls == 1
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    assert manifest["version"] == 1 and manifest["params"] == {"n": 3, "sizes": [1, 2]} and manifest["note"]
    assert manifest["files"] == {"data.bin": hashlib.sha256(b"data").hexdigest(),
                                 "sub/index.txt": hashlib.sha256(b"i").hexdigest()}
    assert _mode(target / MANIFEST_FILE) == 0o644 and _mode(target) == 0o755
    assert build_problem(target, spec) is None
    # only the build and its lock remain in the parent: no temporary directory
    assert _listing(target.parent) == sorted([target.name, f".{target.name}.lock"])


def test_cached_build_rebuilds_a_stale_spec(tmp_path):
    target = tmp_path / "build"
    cached_build(target, {"version": 1, "params": {"n": 3}}, Builder(b"v1"))
    assert "params changed (n)" in build_problem(target, {"version": 1, "params": {"n": 4}})
    assert "version changed (1 -> 2)" in build_problem(target, {"version": 2, "params": {"n": 3}})
    again = Builder(b"v2")
    cached_build(target, {"version": 2, "params": {"n": 3}}, again)
    assert again.calls == 1 and (target / "data.bin").read_bytes() == b"v2"
    assert json.loads((target / MANIFEST_FILE).read_text())["version"] == 2


def test_cached_build_detects_a_corrupt_or_missing_file(tmp_path):
    target, spec = tmp_path / "build", {"v": 1}
    cached_build(target, spec, Builder())
    (target / "data.bin").write_bytes(b"dat4")
    assert "data.bin sha256" in build_problem(target, spec)
    assert build_problem(target, spec, verify_files=False) is None  # same size, only the checksum can tell
    rebuild = Builder()
    cached_build(target, spec, rebuild)
    assert rebuild.calls == 1 and (target / "data.bin").read_bytes() == b"data"
    (target / "sub" / "index.txt").unlink()
    assert "index.txt is missing" in build_problem(target, spec)
    (target / MANIFEST_FILE).write_text("{not json")
    assert "unreadable" in build_problem(target, spec)


def test_a_manifest_without_checksums_is_not_reused(tmp_path):
    # a cache written before cached_build (its manifest has the spec but no "files") is rebuilt, not trusted
    target, spec = tmp_path / "old", {"v": 1}
    target.mkdir()
    (target / "data.bin").write_bytes(b"stale")
    (target / MANIFEST_FILE).write_text(json.dumps({"v": 1}))
    assert "lists no files" in build_problem(target, spec)
    cached_build(target, spec, Builder())
    assert (target / "data.bin").read_bytes() == b"data"


def test_interrupted_build_leaves_nothing_that_looks_complete(tmp_path):
    target, spec = tmp_path / "build", {"v": 1}
    with pytest.raises(KeyboardInterrupt):
        cached_build(target, spec, Builder(fail=True))
    assert not target.exists() and _listing(tmp_path) == [".build.lock"]
    cached_build(target, spec, Builder(b"good"))
    with pytest.raises(KeyboardInterrupt):  # a failed forced rebuild leaves the previous build as it was
        cached_build(target, spec, Builder(b"bad", fail=True), force=True)
    assert (target / "data.bin").read_bytes() == b"good" and build_problem(target, spec) is None
    assert _listing(tmp_path) == [".build.lock", "build"]


def test_debris_of_a_dead_builder_is_removed(tmp_path):
    target = tmp_path / "build"
    debris = tmp_path / ".build.tmp-dead"
    debris.mkdir()
    (debris / "data.bin").write_bytes(b"half")
    cached_build(target, {"v": 1}, Builder())
    assert not debris.exists()


def test_concurrent_builders_wait_on_the_lock(tmp_path):
    # flock locks belong to an open file, so two threads conflict just as two processes (DDP ranks) do
    target, spec, build = tmp_path / "build", {"v": 1}, Builder(delay=0.3)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cached_build(target, spec, build))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [target] * 3 and build.calls == 1
