"""File safety for the whole package: where derived files live, and how every file is written, locked and fetched.

One convention everywhere (datasets, indexes, the registry, run artefacts, benchmark results, downloads):

* derived builds go under :func:`data_root` (``cache_dir``); the user's own source files are ``root`` and are only
  ever read;
* files are written atomically (:func:`atomic_write_bytes`: a temporary file in the same directory, then a
  rename), so a reader never sees a half-written file and an interrupted write leaves the old file (or none) in
  place; every artefact is created mode 0644 (``mkstemp`` alone makes them private, unlike the weights beside them);
* read-modify-write of a shared file holds :func:`file_lock` (``filelock``: the same code on every OS);
* downloads (:func:`fetch`) land in the cache once, through a temporary file, and are checked against a sha256
  before anything reads them;
* derived builds (:func:`cached_build`) are made once, under a lock, in a temporary directory that is renamed into
  place only when complete; a manifest records the spec they were built from and each file's :func:`sha256_file`,
  and a build whose spec or files no longer match is rebuilt.

Reading never writes: a complete, valid build or download is used without taking a lock (the rename that put it
in place is atomic, so nothing half-written can be seen), so a cache on a read-only mount (a shared data set on a
cluster) serves every command. Locks, temporary files and renames happen only when something must be built.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

FILE_MODE = 0o644


def data_root() -> Path:
    """Root of built datasets, indexes and downloads: ``$METAZOO_DATA``, else ``~/.cache/metazoo``."""
    return Path(os.environ.get("METAZOO_DATA") or Path.home() / ".cache" / "metazoo")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int = FILE_MODE) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it gets ``mode`` and is renamed onto ``path``.

    For writers that want a file name rather than bytes (safetensors, ``torch.save``, FAISS). On an exception the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = FILE_MODE) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename (mode 0644)."""
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str, mode: int = FILE_MODE) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` for a read-modify-write of ``path``.

    Processes running side by side (benchmarks registering checkpoints, two builds of one cache) then take turns
    instead of dropping each other's changes. The lock is :class:`filelock.FileLock` (``fcntl`` on POSIX,
    ``msvcrt`` on Windows), so the package imports and locks the same way on every OS. The lock file is left in
    place: removing it would race. Only writers call this; readers of a complete cache take no lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(path.name + ".lock"))):
        yield


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class ChecksumError(ValueError):
    """A file does not match the sha256 it is expected to have."""


def is_url(location: str | os.PathLike) -> bool:
    """True for ``http://``, ``https://`` and ``file://`` locations (what :func:`fetch` accepts)."""
    return urllib.parse.urlparse(str(location)).scheme in ("http", "https", "file")


def fetch(url: str, sha256: str | None = None, cache_dir: str | os.PathLike | None = None,
          timeout: float = 60.0) -> Path:
    """Download ``url`` once into the cache and return the local path; verify ``sha256`` when given.

    The file lands in ``<cache_dir or data_root()/downloads>/<sha256 of the URL>/<basename>`` through a temporary
    file, so an interrupted download never leaves a file that looks complete. With ``sha256`` the cached copy is
    checked on every call (a corrupt or replaced file raises :class:`ChecksumError`, naming both hashes) and a
    fresh download that does not match is deleted. Fetching only copies bytes: what reads the file decides how far
    to trust it (checkpoints are read with ``weights_only=True``).
    """
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https", "file"):
        raise ValueError(f"fetch: expected an http://, https:// or file:// URL, got {url!r}")
    name = Path(urllib.parse.unquote(parsed.path)).name or "download"
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    dest = Path(cache_dir or data_root() / "downloads") / key / name
    if dest.is_file():  # already downloaded: read-only use, no lock (see module docstring)
        _check_cached(dest, url, sha256)
        return dest
    with file_lock(dest):
        if not dest.is_file():
            with atomic_path(dest) as tmp:
                with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                    shutil.copyfileobj(response, out)
                if sha256 is not None and (actual := sha256_file(tmp)) != sha256:
                    raise ChecksumError(f"download {url}: sha256 {actual}, expected {sha256}; nothing was kept")
        else:
            _check_cached(dest, url, sha256)
    return dest


def _check_cached(dest: Path, url: str, sha256: str | None) -> None:
    if sha256 is not None and (actual := sha256_file(dest)) != sha256:
        raise ChecksumError(f"cached download {dest} of {url}: sha256 {actual}, expected {sha256}; the file is "
                            f"corrupt or was replaced (delete it to download again)")


MANIFEST_FILE = "manifest.json"


def spec_key(spec: dict[str, Any]) -> str:
    """16 hex digits of the sha256 of ``spec`` as canonical JSON: a cache directory name for a build spec."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def _differing(old: Any, new: Any) -> str:
    """The sub-keys where two spec values differ (for a dict), else the two values, shortened."""
    if isinstance(old, dict) and isinstance(new, dict):
        return ", ".join(sorted(str(k) for k in set(old) | set(new) if old.get(k) != new.get(k)))
    return f"{str(old)[:40]} -> {str(new)[:40]}"


def build_problem(directory: str | os.PathLike, spec: dict[str, Any], verify_files: bool = True) -> str | None:
    """Why ``directory`` is not a complete build of ``spec`` (a sentence), or None when it can be used.

    A complete build has a :data:`MANIFEST_FILE` whose top-level fields equal every field of ``spec`` (compared as
    JSON, so tuples and lists agree) and whose ``files`` (``{relative path: sha256}``) all exist with those
    checksums (``verify_files=False`` checks only that they exist).
    """
    directory = Path(directory)
    mpath = directory / MANIFEST_FILE
    if not mpath.is_file():
        return f"no {MANIFEST_FILE} in {directory}"
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"{mpath} is unreadable: {e}"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) or not manifest["files"]:
        return f"{mpath} lists no files (written by an older version)"
    for field, value in json.loads(json.dumps(spec)).items():
        if manifest.get(field) != value:
            return f"{field.replace('_', ' ')} changed ({_differing(manifest.get(field), value)})"
    for name, digest in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            return f"{path} is missing"
        if verify_files and (actual := sha256_file(path)) != digest:
            return f"{path} sha256 {actual[:12]}... does not match the manifest's {str(digest)[:12]}..."
    return None


def cached_build(directory: str | os.PathLike, spec: dict[str, Any],
                 build_fn: Callable[[Path], dict[str, Any] | None], *, force: bool = False,
                 on_build: Callable[[Path, str], None] | None = None) -> Path:
    """Build ``directory`` once from ``spec`` with ``build_fn`` and return it; rebuild it when missing or stale.

    :func:`build_problem` decides whether the existing build can be used; a usable one is returned without a lock
    or any write. Otherwise, under :func:`file_lock` (so concurrent builders, e.g. DDP ranks, wait and then reuse
    the first one's build), the check is repeated and, if the build is still needed, ``build_fn(tmp)`` writes the
    files into a fresh temporary directory beside ``directory`` and returns extra manifest fields (or None); the
    manifest (those fields, then ``spec``'s fields, then ``files``: the sha256 of every file written) is written
    last, and the directory is renamed into place. An interrupted build therefore leaves no directory that looks
    complete and the previous build, if any, untouched. Callers choose ``directory`` (usually named by
    :func:`spec_key` of the spec, or by readable parameters when the spec also holds file checksums that should
    replace, not accumulate, old builds). ``on_build(directory, reason)`` is told why a build starts.
    """
    target = Path(directory)
    if not force and build_problem(target, spec) is None:
        return target  # complete and valid: used as it is, without a lock or any write (a read-only cache works)
    with contextlib.ExitStack() as held:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            held.enter_context(file_lock(target.with_name("." + target.name)))
        except OSError as err:
            raise OSError(err.errno, f"cannot build {target} ({build_problem(target, spec) or 'forced'}): its "
                                 f"directory cannot be written ({err.strerror}: {err.filename}); build it where it "
                                 f"can be written (cache_dir / METAZOO_DATA) or give a complete copy") from None
        reason = "forced" if force else build_problem(target, spec)
        if reason is None:  # another process finished the build while this one waited for the lock
            return target
        if on_build is not None:
            on_build(target, reason)
        # Under the lock, a temporary directory of this build can only belong to a builder that died.
        for old in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(old, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            extra = build_fn(tmp) or {}
            files = sorted(p for p in tmp.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
            manifest = {**extra, **spec, "files": {p.relative_to(tmp).as_posix(): sha256_file(p) for p in files}}
            atomic_write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")
            # mkdtemp makes the directory owner-only and some writers (safetensors) make files 0600; the cache may
            # be shared, so every file of a build is 0644 and every directory 0755.
            for p in tmp.rglob("*"):
                os.chmod(p, 0o755 if p.is_dir() else FILE_MODE)
            os.chmod(tmp, 0o755)
            if target.exists():  # a directory cannot be renamed onto a non-empty one: move the old one aside first
                trash = target.parent / f".{target.name}.tmp-old-{os.getpid()}"
                os.replace(target, trash)
                os.replace(tmp, target)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target
