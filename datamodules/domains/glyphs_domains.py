"""Glyphs-Domains: a domain-shift benchmark rendered offline from matplotlib's fonts (the Glyphs renderer).

Why it exists: WILDS and DomainBed need downloads this project cannot make; the fonts matplotlib ships are always
there. The label space is 20 characters every usable face draws (``CHARACTERS``: the ten digits and ten capital
letters without I and O, which look like 1 and 0). A **domain is a font face x a rendering style**:

* faces: every face of :func:`datamodules.images.glyphs.discover_faces` that draws ink for all 20 characters (21
  with matplotlib 3.11: DejaVu Sans / Serif / Sans Mono in four cuts, STIX General in four, ``cmr10``, ``cmb10``,
  ``cmss10``, ``cmti10``, ``cmtt10``);
* styles (``STYLES``): ``plain``, ``bold`` (strokes one output pixel thicker), ``blur`` (Gaussian, sigma 1.2 px)
  and ``noise`` (Gaussian pixel noise, sigma 45-60 grey levels) are seen in training; ``thin`` (eroded strokes)
  and ``contrast`` (ink and background squeezed into 80..169 grey) are held out, never seen in training.

Splits, fixed whatever the seed (the seed only drives the distortions): faces are sorted by name and face ``i``
goes to test when ``i % 7`` is 3 or 6, to validation when ``i % 7`` is 1, to training otherwise (12 / 3 / 6
faces). Training domains are the training faces in the four training styles (48 domains); validation and test
domains are their faces in **all six** styles (18 and 36 domains), so every target domain has an unseen face and a
third of them also an unseen style. Training faces and validation/test faces are disjoint, hence so are domains.

Every (domain, character) is rendered ``instances`` (8) times with Glyphs' random affine distortion (rotation,
scale, shear, translation; :func:`~datamodules.images.glyphs.distort`), then the style. In training domains the
last ``holdout`` (2) instances of each character are held out as the ``in_domain`` split: the same domains, unseen
images, which is where ERM's in-domain accuracy is measured against its held-out-domain accuracy.

Cache: ``<cache_dir>/glyphs_domains/<image_size>px-<instances>x-seed<seed>/`` with ``glyphs_domains.safetensors``
(``images`` uint8 ``[M, 1, H, W]`` bright ink on black, ``labels``, ``domains``, ``in_domain``) and
``manifest.json`` (parameters, font checksums, the domain table), written through
:func:`safefiles.cached_build` (atomic, locked, rebuilt when a font or parameter changes). Same seed, same
bytes.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safefiles import cached_build, data_root
from datamodules.domains.base import DomainDataModule
from datamodules.domains.core import DomainSet
from datamodules.episodes import TensorSource
from datamodules.images.glyphs import DISTORTION, REF_EM, discover_faces, distort, render_clean
from datamodules.images.transforms import GRAY_MEAN, GRAY_STD, ImageTransform

log = logging.getLogger(__name__)

BUILDER_VERSION = 2
DATA_FILE = "glyphs_domains.safetensors"
CHARACTERS = "0123456789ABCDEFGHJK"
TRAIN_STYLES = ("plain", "bold", "blur", "noise")
HELD_OUT_STYLES = ("thin", "contrast")
#: style -> (changes to Glyphs' distortion, what is done to the rendered uint8 image afterwards).
STYLES: dict[str, dict[str, Any]] = {
    "plain": {"distortion": {"stroke_steps": [0], "stroke_probs": [1.0]}},
    "bold": {"distortion": {"stroke_steps": [2], "stroke_probs": [1.0]}},
    "thin": {"distortion": {"stroke_steps": [-1], "stroke_probs": [1.0], "max_erosion_loss": 0.8}},
    "blur": {"distortion": {"stroke_steps": [0], "stroke_probs": [1.0]}, "blur_sigma": 1.2},
    "noise": {"distortion": {"stroke_steps": [0], "stroke_probs": [1.0], "noise_sigma": [45.0, 60.0]}},
    "contrast": {"distortion": {"stroke_steps": [0], "stroke_probs": [1.0]}, "contrast": [80.0, 0.35]},
}


def face_split(index: int) -> str:
    """The split of the ``index``-th face in name order (module docstring)."""
    return "test" if index % 7 in (3, 6) else "val" if index % 7 == 1 else "train"


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D float image (kernel radius ``ceil(3 sigma)``, zero outside: background)."""
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    out = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 0, img)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 1, out)


def render_styled(glyph: np.ndarray, style: str, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """One instance of a clean glyph (``render_clean`` at ``REF_EM``) in ``style``: uint8 ``[H, W]``."""
    spec = STYLES[style]
    img = distort(glyph, image_size, rng, {**DISTORTION, **spec["distortion"]}, glyph_em=REF_EM).astype(np.float32)
    if "blur_sigma" in spec:
        img = gaussian_blur(img, spec["blur_sigma"])
        peak = img.max()
        if peak > 0:  # keep the brightest ink white, as the plain renderings are
            img *= 255.0 / peak
    if "contrast" in spec:
        offset, gain = spec["contrast"]
        img = offset + gain * img
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _params(image_size: int, instances: int, holdout: int, seed: int) -> dict[str, Any]:
    return {"image_size": image_size, "instances": instances, "holdout": holdout, "seed": seed,
            "characters": CHARACTERS, "train_styles": list(TRAIN_STYLES), "held_out_styles": list(HELD_OUT_STYLES),
            "styles": STYLES, "distortion": DISTORTION, "builder_version": BUILDER_VERSION}


def usable_faces() -> list:
    """Faces (sorted by name) that draw ink for every character of ``CHARACTERS``."""
    out = []
    for face in sorted(discover_faces(), key=lambda f: f.name):
        if all(ord(c) in face.coverage and render_clean(face.path, face.coverage[ord(c)]) is not None
               for c in CHARACTERS):
            out.append(face)
    return out


def build_glyphs_domains(cache_dir: str | Path | None = None, image_size: int = 28, instances: int = 8,
                         holdout: int = 2, seed: int = 0, force: bool = False) -> Path:
    """Build the benchmark into the cache if it is missing or stale; return its directory (module docstring)."""
    if image_size < 16:
        raise ValueError(f"GlyphsDomains: image_size must be >= 16, got {image_size}")
    if not 0 <= holdout < instances:
        raise ValueError(f"GlyphsDomains: need 0 <= holdout < instances, got holdout={holdout}, "
                         f"instances={instances}")
    faces = usable_faces()
    if len(faces) < 7:
        raise ValueError(f"GlyphsDomains: only {len(faces)} faces draw all of {CHARACTERS!r}; need at least 7")
    params = _params(image_size, instances, holdout, seed)
    spec = {"dataset": "glyphs_domains", "params": params, "fonts": {f.name: f.sha256 for f in faces}}
    root = Path(cache_dir) if cache_dir is not None else data_root()
    target = root / "glyphs_domains" / f"{image_size}px-{instances}x-seed{seed}"
    return cached_build(target, spec, lambda out: _build_into(out, params, faces), force=force,
                        on_build=lambda d, why: log.info("GlyphsDomains: building %s (%s)", d, why))


def _build_into(out: Path, params: dict[str, Any], faces: list) -> dict[str, Any]:
    from safetensors.numpy import save_file

    t0 = time.perf_counter()
    size, n_inst, holdout, seed = params["image_size"], params["instances"], params["holdout"], params["seed"]
    domains: list[dict[str, Any]] = []
    for fi, face in enumerate(faces):
        split = face_split(fi)
        styles = TRAIN_STYLES if split == "train" else TRAIN_STYLES + HELD_OUT_STYLES
        for style in styles:
            domains.append({"name": f"{face.name}/{style}", "face": face.name, "style": style, "split": split,
                            "face_index": fi, "style_index": list(STYLES).index(style)})
    images, labels, domain_of, in_domain = [], [], [], []
    for di, dom in enumerate(domains):
        face = faces[dom["face_index"]]
        rendered = []
        for ci, ch in enumerate(CHARACTERS):
            glyph = render_clean(face.path, face.coverage[ord(ch)])
            rng = np.random.default_rng([seed, dom["face_index"], dom["style_index"], ci])
            rendered.append([render_styled(glyph, dom["style"], size, rng) for _ in range(n_inst)])
        # Instance-major order inside a domain (instance 0 of every character, then instance 1, ...): a domain's
        # first evaluation batch, the one test-time adaptation sees, then holds every class, as a shuffled
        # WILDS domain would, instead of the first few characters only.
        for j in range(n_inst):
            for ci in range(len(CHARACTERS)):
                images.append(rendered[ci][j])
                labels.append(ci)
                domain_of.append(di)
                in_domain.append(dom["split"] == "train" and j >= n_inst - holdout)
    tensors = {"images": np.stack(images)[:, None], "labels": np.array(labels, dtype=np.int64),
               "domains": np.array(domain_of, dtype=np.int64), "in_domain": np.array(in_domain, dtype=np.uint8)}
    save_file(tensors, str(out / DATA_FILE), metadata={"builder_version": str(BUILDER_VERSION)})
    log.info("GlyphsDomains: rendered %d images of %d domains in %.1f s", len(labels), len(domains),
             time.perf_counter() - t0)
    return {"domains": domains, "num_images": len(labels),
            "splits": {s: sum(d["split"] == s for d in domains) for s in ("train", "val", "test")}}


def load_glyphs_domains(cache_dir: str | Path | None = None, image_size: int = 28, instances: int = 8,
                        holdout: int = 2, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Build if needed, then the arrays and the manifest."""
    from safetensors.numpy import load_file

    directory = build_glyphs_domains(cache_dir, image_size, instances, holdout, seed)
    manifest = json.loads((directory / "manifest.json").read_text())
    arrays = load_file(str(directory / DATA_FILE))
    for key in ("images", "labels", "domains", "in_domain"):
        if key not in arrays:
            raise ValueError(f"{directory / DATA_FILE}: field {key!r} is missing (delete the directory to rebuild)")
    return arrays, manifest


class GlyphsDomainsDataModule(DomainDataModule):
    """The Glyphs-Domains benchmark (module docstring) as single-domain training batches and per-domain evaluation.

    Args:
        cache_dir: where the build goes (default ``$METAZOO_DATA`` or ``~/.cache/metazoo``); built on first use.
        image_size: side of the grayscale images (28).
        instances: renderings per (domain, character).
        holdout: of those, held out of training domains as the ``in_domain`` split.
        build_seed: seed of the rendering distortions (the data); ``seed`` keys batches and super-domains.
        support_size ... num_workers: see :class:`~datamodules.domains.base.DomainDataModule`.
    """

    def __init__(self, cache_dir: str | None = None, image_size: int = 28, instances: int = 8, holdout: int = 2,
                 build_seed: int = 0, support_size: int = 24, query_size: int = 16, groups_per_batch: int = 1,
                 train_batches: int = 100, eval_batch_size: int | None = None, super_domains: int = 4,
                 super_domain_method: str = "random", test_split: str = "test", seed: int = 0,
                 eval_seed: int | None = None, num_workers: int = 0):
        super().__init__(support_size=support_size, query_size=query_size, groups_per_batch=groups_per_batch,
                         train_batches=train_batches, eval_batch_size=eval_batch_size, super_domains=super_domains,
                         super_domain_method=super_domain_method, test_split=test_split, seed=seed,
                         eval_seed=eval_seed, num_workers=num_workers)
        self.save_hyperparameters()
        self.cache_dir, self.image_size, self.instances, self.holdout = cache_dir, image_size, instances, holdout
        self.build_seed = build_seed

    def prepare_data(self) -> None:
        build_glyphs_domains(self.cache_dir, self.image_size, self.instances, self.holdout, self.build_seed)

    def build_domains(self) -> DomainSet:
        arrays, manifest = load_glyphs_domains(self.cache_dir, self.image_size, self.instances, self.holdout,
                                               self.build_seed)
        names = {i: c for i, c in enumerate(CHARACTERS)}
        source = TensorSource(torch.from_numpy(arrays["images"]), torch.from_numpy(arrays["labels"]), names,
                              ImageTransform(GRAY_MEAN, GRAY_STD))
        table = manifest["domains"]
        split_domains = {s: [i for i, d in enumerate(table) if d["split"] == s] for s in ("train", "val", "test")}
        return DomainSet(source, torch.from_numpy(arrays["domains"]), [d["name"] for d in table], names,
                         split_domains, in_domain=torch.from_numpy(arrays["in_domain"]).bool(), name=self.name)
