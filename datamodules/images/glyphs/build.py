"""The cached Glyphs build: which classes qualify, rendering them in parallel, the files and manifest of one
variant under the data cache (rebuilt when its recipe, fonts or renderer change), and loading it back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from safefiles import MANIFEST_FILE, build_problem, cached_build, data_root, sha256_file
from datamodules.episodes import SPLITS
from datamodules.images.glyphs.fonts import (
    EXCLUDED_FONTS,
    Face,
    alphabet_of,
    block_of,
    char_name,
    discover_faces,
    font_checksums,
    is_class_candidate,
    script_of,
)
from datamodules.images.glyphs.lookalikes import (
    LOOKALIKE_SIZE,
    LOOKALIKE_THRESHOLD,
    REFERENCE_FACES,
    SPLIT_TARGETS,
    alphabet_kind,
    assign_alphabets,
    duplicate_classes,
    lookalike_groups,
    lookalike_pairs,
    resolve_lookalikes,
)
from datamodules.images.glyphs.render import (
    DISTORTION,
    EM_FRACTION,
    MAX_EXTENT,
    MAX_GAIN,
    REF_EM,
    SUPERSAMPLE,
    render_class,
)
from datamodules.progress import Progress

log = logging.getLogger(__name__)

#: Bump whenever a change to this package changes the bytes a build produces; old caches are then rebuilt.
BUILDER_VERSION = 2

DATA_FILE = "glyphs.safetensors"

MIN_FACES = 12


def _renderer_versions() -> dict[str, str]:
    import PIL
    from PIL import features

    # Unicode data (categories, names, NFKC) decides the candidates and the look-alikes; FreeType the pixels.
    return {"pillow": PIL.__version__, "freetype": str(features.version("freetype2")), "numpy": np.__version__,
            "unicode": unicodedata.unidata_version}


def _params(image_size: int, instances_per_class: int, seed: int, min_faces: int,
            codepoints: Sequence[int] | None) -> dict[str, Any]:
    return {
        "image_size": int(image_size), "instances_per_class": int(instances_per_class), "seed": int(seed),
        "min_faces": int(min_faces), "codepoints": None if codepoints is None else sorted({int(c) for c in codepoints}),
        "supersample": SUPERSAMPLE, "ref_em": REF_EM, "em_fraction": EM_FRACTION, "max_extent": MAX_EXTENT,
        "max_gain": MAX_GAIN,
        "distortion": DISTORTION, "split_targets": SPLIT_TARGETS, "lookalike": {
            "size": LOOKALIKE_SIZE, "threshold": LOOKALIKE_THRESHOLD,
            "reference_faces": list(REFERENCE_FACES)},
        "excluded_fonts": list(EXCLUDED_FONTS),
    }


def cache_dir(root: str | Path | None, image_size: int, instances_per_class: int, seed: int,
              min_faces: int = MIN_FACES, codepoints: Sequence[int] | None = None) -> Path:
    """Where one variant lives: ``<root>/glyphs/<size>px-<n>x-seed<seed>[-f<min_faces>][-sub<hash>]``."""
    root = Path(root) if root is not None else data_root()
    name = f"{image_size}px-{instances_per_class}x-seed{seed}"
    if min_faces != MIN_FACES:
        name += f"-f{min_faces}"
    if codepoints is not None:
        digest = hashlib.sha256(json.dumps(sorted({int(c) for c in codepoints})).encode()).hexdigest()[:10]
        name += f"-sub{digest}"
    return root / "glyphs" / name


def validate_args(image_size: int, instances_per_class: int, min_faces: int) -> None:
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"Glyphs: image_size must be an int >= 8, got {image_size!r}")
    if not isinstance(instances_per_class, int) or instances_per_class < 1:
        raise ValueError(f"Glyphs: instances_per_class must be an int >= 1, got {instances_per_class!r}")
    if not isinstance(min_faces, int) or min_faces < 1:
        raise ValueError(f"Glyphs: min_faces must be an int >= 1, got {min_faces!r}")


def _spec(params: dict[str, Any], fonts: dict[str, str] | None = None) -> dict[str, Any]:
    """What a build depends on, as :func:`safefiles.cached_build` compares it with the manifest."""
    return {"builder_version": BUILDER_VERSION, "params": params, "renderer": _renderer_versions(),
            "font_sha256": font_checksums() if fonts is None else fonts}


def stale_reason(directory: str | Path, params: dict[str, Any], fonts: dict[str, str] | None = None,
                 verify_data: bool = True) -> str | None:
    """Why the cache in ``directory`` cannot be used for ``params`` (a sentence), or None when it is current."""
    return build_problem(directory, _spec(params, fonts), verify_files=verify_data)


def build_glyphs(root: str | Path | None = None, image_size: int = 28, instances_per_class: int = 20,
                 seed: int = 0, *, min_faces: int = MIN_FACES, codepoints: Sequence[int] | None = None,
                 workers: int | None = None, force: bool = False) -> Path:
    """Build the Glyphs benchmark into the cache (if it is missing or stale) and return its directory.

    Args:
        root: cache root (default ``$METAZOO_DATA`` or ``~/.cache/metazoo``).
        image_size: output side in pixels.
        instances_per_class: renderings per class (20 allows 5-shot 15-query episodes).
        seed: seed of the distortions; the same seed gives byte-identical files.
        min_faces: faces that must contain a glyph for it to be a class.
        codepoints: restrict the candidate classes (for tests and quick looks); None means all.
        workers: rendering processes (default ``min(2, cpu_count)``); the result does not depend on it.
        force: rebuild even if the cache is current.
    """
    validate_args(image_size, instances_per_class, min_faces)
    params = _params(image_size, instances_per_class, seed, min_faces, codepoints)
    # Named by the parameters, not a hash of the spec: a changed font or renderer replaces the build in place.
    target = cache_dir(root, image_size, instances_per_class, seed, min_faces, codepoints)
    t0 = time.perf_counter()
    built = []

    def started(directory: Path, reason: str) -> None:
        log.info("Glyphs: building %s (%s)", directory, reason)
        built.append(directory)

    cached_build(target, _spec(params), lambda out: _build_into(out, params, discover_faces(), workers),
                 force=force, on_build=started)
    if built:
        log.info("Glyphs: built %s in %.1f s", target, time.perf_counter() - t0)
    return target


def _pool(workers: int):
    methods = multiprocessing.get_all_start_methods()
    # fork: the workers only run PIL and numpy, and re-importing torch/lightning under spawn costs seconds.
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ctx.Pool(workers)


def _build_into(out: Path, params: dict[str, Any], faces: Sequence[Face], workers: int | None) -> dict[str, Any]:
    return _write_build(out, params, faces, _render_all(params, faces, workers))


def _render_all(params: dict[str, Any], faces: Sequence[Face], workers: int | None) -> list[dict[str, Any]]:
    """Render every candidate class (in ``workers`` processes); results in code point order."""
    image_size, n_inst, seed = params["image_size"], params["instances_per_class"], params["seed"]
    # Candidates: visible code points that enough cmaps claim (the ink check below may still reject faces).
    claims: dict[int, list[tuple[int, str, int]]] = defaultdict(list)
    for fid, face in enumerate(faces):
        for cp, code in face.coverage.items():
            claims[cp].append((fid, face.path, code))
    wanted = None if params["codepoints"] is None else set(params["codepoints"])
    candidates = sorted(cp for cp, fl in claims.items()
                        if len(fl) >= params["min_faces"] and is_class_candidate(cp)
                        and (wanted is None or cp in wanted))
    if not candidates:
        raise ValueError(f"Glyphs: no code point is drawn by >= {params['min_faces']} faces"
                         + ("" if wanted is None else f" among the {len(wanted)} requested"))
    jobs = [(cp, claims[cp], image_size, n_inst, seed,
             {"min_faces": params["min_faces"], "distortion": params["distortion"],
              "reference_faces": params["lookalike"]["reference_faces"]}) for cp in candidates]
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    t0 = time.perf_counter()
    with Progress(f"Glyphs: rendering {len(jobs):,} candidate classes x {n_inst} instances", len(jobs),
                  "classes") as bar:
        results = []
        with contextlib.ExitStack() as stack:
            if workers > 1 and len(jobs) > 64:
                rendered = stack.enter_context(_pool(workers)).imap(render_class, jobs, chunksize=16)
            else:
                rendered = map(render_class, jobs)
            for r in rendered:  # imap yields in job order as classes finish: the count is what is done
                results.append(r)
                bar.update()

    log.info("Glyphs: rendered %d candidates x %d instances with %d process(es) in %.1f s", len(jobs), n_inst,
             workers, time.perf_counter() - t0)
    return results


def _write_build(out: Path, params: dict[str, Any], faces: Sequence[Face],
                 results: list[dict[str, Any]]) -> dict[str, Any]:
    """Qualify classes, split alphabets, separate look-alikes, write the data file; return the manifest's fields
    (:func:`safefiles.cached_build` adds the spec and the files' checksums and writes it last)."""
    n_inst = params["instances_per_class"]
    t0 = time.perf_counter()
    dropped: dict[int, str] = {}
    rendered = {}
    for r in results:
        if r["images"] is None:
            dropped[r["cp"]] = f"only {len(r['faces'])} faces draw it"
        else:
            rendered[r["cp"]] = r
    qualified = sorted(rendered)
    thumbs: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    for cp in qualified:
        for face, t in rendered[cp]["thumbs"].items():
            thumbs[face][cp] = t
    pairs = lookalike_pairs(qualified, thumbs, params["lookalike"]["threshold"])
    groups = lookalike_groups(qualified, pairs)

    alphabet = {cp: alphabet_of(cp) for cp in qualified}
    # An alphabet is weighed by the classes it keeps even if its look-alikes' originals (the lowest code point
    # of their group) end up in another split: Cyrillic without A, E, O, ... counts what it will really add.
    original = {cp: g[0] for g in groups for cp in g}
    sizes = Counter(alphabet[cp] for cp in qualified if alphabet[original.get(cp, cp)] == alphabet[cp])
    for name in set(alphabet.values()) - set(sizes):
        sizes[name] = 0
    starts = {name: min(cp for cp in qualified if alphabet[cp] == name) for name in sizes}
    kinds = {name: alphabet_kind(name) for name in sizes}
    alphabets = assign_alphabets(dict(sizes), starts, kinds, params["split_targets"])
    split_of = {cp: alphabets[alphabet[cp]] for cp in qualified}
    # Identical pictures inside a split first (so that a group's weight in each split counts distinct pictures:
    # 4 / superscript 4 / subscript 4 is one picture in two splits, and the tie keeps the digit), then the
    # cross-split separation.
    exact: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    for cp in qualified:
        for face, t in rendered[cp]["exact"].items():
            exact[face][cp] = t
    dropped.update(duplicate_classes(groups, split_of, exact, params["lookalike"]["threshold"]))
    remaining = {cp: split_of[cp] for cp in qualified if cp not in dropped}
    dropped.update(resolve_lookalikes(remaining, groups))
    kept = [cp for cp in qualified if cp not in dropped]
    log.info("Glyphs: %d look-alike groups, %d classes kept of %d qualified (%.1f s)", len(groups), len(kept),
             len(qualified), time.perf_counter() - t0)
    t0 = time.perf_counter()

    images = np.concatenate([rendered[cp]["images"] for cp in kept])[:, None]
    labels = np.repeat(np.arange(len(kept), dtype=np.int64), n_inst)
    face_of = np.concatenate([rendered[cp]["face_of"] for cp in kept]).astype(np.int16)
    class_split = np.array([SPLITS.index(split_of[cp]) for cp in kept], dtype=np.int8)
    tensors = {"images": images, "labels": labels, "faces": face_of,
               "codepoints": np.array(kept, dtype=np.int64), "class_split": class_split}
    from safetensors.numpy import save_file

    # One metadata entry only: safetensors keeps metadata in a hash map whose order varies between runs, and the
    # file must be byte-identical for the same seed.
    save_file(tensors, str(out / DATA_FILE), metadata={"glyphs_builder_version": str(BUILDER_VERSION)})

    classes = [{"index": i, "codepoint": f"U+{cp:04X}", "name": char_name(cp), "alphabet": alphabet[cp],
                "block": block_of(cp), "script": script_of(cp), "split": split_of[cp], "faces": rendered[cp]["faces"]}
               for i, cp in enumerate(kept)]
    manifest = {
        "dataset": "glyphs",
        "builder_version": BUILDER_VERSION,
        "params": params,
        "renderer": _renderer_versions(),
        "fonts": [{"name": f.name, "file": Path(f.path).name, "sha256": f.sha256,
                   "custom_encoding": f.custom_encoding} for f in faces],
        "alphabets": {name: {"split": alphabets[name], "kind": kinds[name],
                             "qualified": sum(1 for cp in qualified if alphabet[cp] == name),
                             "kept": sum(1 for c in classes if c["alphabet"] == name)}
                      for name in sorted(sizes, key=lambda n: starts[n])},
        "splits": {s: sum(1 for c in classes if c["split"] == s) for s in SPLITS},
        "num_classes": len(kept),
        "num_instances": len(labels),
        "classes": classes,
        "lookalike_groups": [[f"U+{cp:04X}" for cp in g] for g in groups],
        "dropped": [{"codepoint": f"U+{cp:04X}", "name": char_name(cp), "reason": dropped[cp]}
                    for cp in sorted(dropped)],
        "data": {"file": DATA_FILE, "sha256": sha256_file(out / DATA_FILE), "bytes": (out / DATA_FILE).stat().st_size},
    }
    log.info("Glyphs: wrote %s (%.1f MB) in %.1f s", out / DATA_FILE, manifest["data"]["bytes"] / 1e6,
             time.perf_counter() - t0)
    return manifest


@dataclass
class GlyphsData:
    """A loaded build: ``images`` uint8 [M, 1, H, W], ``labels`` [M] (class index), ``faces`` [M] (index into
    ``manifest["fonts"]``), ``codepoints`` [C], ``class_split`` [C] (0 train, 1 val, 2 test), the manifest."""

    images: np.ndarray
    labels: np.ndarray
    faces: np.ndarray
    codepoints: np.ndarray
    class_split: np.ndarray
    manifest: dict[str, Any]
    directory: Path

    def split_classes(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.class_split == SPLITS.index(split))


def load_glyphs(root: str | Path | None = None, image_size: int = 28, instances_per_class: int = 20,
                seed: int = 0, *, min_faces: int = MIN_FACES, codepoints: Sequence[int] | None = None,
                workers: int | None = None) -> GlyphsData:
    """Build if needed, verify the data checksum, and load the arrays and the manifest."""
    from safetensors.numpy import load_file

    directory = build_glyphs(root, image_size, instances_per_class, seed, min_faces=min_faces,
                             codepoints=codepoints, workers=workers)
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    t = load_file(str(directory / DATA_FILE))
    expected = {"images": 4, "labels": 1, "faces": 1, "codepoints": 1, "class_split": 1}
    for key, ndim in expected.items():
        if key not in t or t[key].ndim != ndim:
            raise ValueError(f"{directory / DATA_FILE}: field {key!r} missing or not {ndim}-D")
    if t["images"].shape[1:] != (1, image_size, image_size) or len(t["codepoints"]) != manifest["num_classes"]:
        raise ValueError(f"{directory / DATA_FILE}: images {t['images'].shape} / {len(t['codepoints'])} classes do "
                         f"not match image_size={image_size} and the manifest's {manifest['num_classes']} classes")
    return GlyphsData(t["images"], t["labels"], t["faces"], t["codepoints"], t["class_split"], manifest, directory)


def split_report(manifest: dict[str, Any]) -> str:
    """Human-readable summary of a build: classes per split and per script, faces per class, alphabets."""
    classes = manifest["classes"]
    lines = [(f"Glyphs: {manifest['num_classes']} classes, {manifest['num_instances']} images "
              f"({manifest['params']['image_size']}px), dropped {len(manifest['dropped'])}")]
    lines.append("split: " + ", ".join(f"{s} {n} ({n / max(1, manifest['num_classes']):.0%})"
                                       for s, n in manifest["splits"].items()))
    per_script: dict[str, Counter] = defaultdict(Counter)
    for c in classes:
        per_script[c["script"]][c["split"]] += 1
    lines.append("script: " + "; ".join(f"{k} {sum(v.values())} ({', '.join(f'{s} {v[s]}' for s in SPLITS if v[s])})"
                                        for k, v in sorted(per_script.items(), key=lambda kv: -sum(kv[1].values()))))
    nf = np.array([len(c["faces"]) for c in classes])
    if len(nf):
        lines.append(f"faces per class: min {nf.min()}, median {int(np.median(nf))}, mean {nf.mean():.1f}, "
                     f"max {nf.max()}")
    for s in SPLITS:
        names = [f"{n} ({a['kept']})" for n, a in manifest["alphabets"].items() if a["split"] == s]
        lines.append(f"{s} alphabets: " + ", ".join(names))
    return "\n".join(lines)
