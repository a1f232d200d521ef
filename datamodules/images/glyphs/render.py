"""Rendering one Glyphs class: a clean bitmap per (character, face) at a fixed em, and the random distortions that
turn it into instances. Runs in worker processes; everything here is a pure function of its arguments.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.images.glyphs.lookalikes import exact_thumbnail, lookalike_thumbnail

SUPERSAMPLE = 4
#: Em size (pixels) of the one clean rendering per (class, face) that the ink check, the look-alike thumbnails
#: and every instance start from; fixed, so the class list does not depend on ``image_size``.
REF_EM = 128
EM_FRACTION = 0.9
MAX_EXTENT = 0.92
MAX_GAIN = 2.0

#: Random distortion of one instance (:mod:`datamodules.images.glyphs`, "What an instance is"). Recorded in the manifest.
DISTORTION: dict[str, Any] = {
    "rotation_deg": 12.0,
    "scale": [0.8, 1.1],
    "aspect": 0.1,
    "shear": 0.2,
    "translate": 0.08,
    "stroke_steps": [-1, 0, 1, 2],
    "stroke_probs": [0.2, 0.45, 0.25, 0.1],
    "max_erosion_loss": 0.5,
    "noise_sigma": [0.0, 10.0],
}

# Minimum ink (sum of the 0..1 coverage, in em^2) for a glyph to count as drawn; a period is ~0.01 em^2.
MIN_INK_EM2 = 0.002

_FONTS: dict[tuple[str, int], Any] = {}


def _font(path: str, size: int):
    from PIL import ImageFont

    key = (path, size)
    if key not in _FONTS:
        # BASIC layout: no shaping engine, so the bitmap does not depend on whether libraqm is installed.
        _FONTS[key] = ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)
    return _FONTS[key]


def render_clean(face_path: str, char_code: int, em_px: int = REF_EM) -> np.ndarray | None:
    """The glyph of ``char_code`` at an em of ``em_px`` pixels, cropped to its ink: uint8, or None when it draws
    (almost) nothing (less than ``MIN_INK_EM2`` of an em square of full ink)."""
    from PIL import Image, ImageDraw

    font = _font(face_path, em_px)
    ch = chr(char_code)
    x0, y0, x1, y1 = font.getbbox(ch)
    if x1 <= x0 or y1 <= y0:
        return None
    pad = 2
    img = Image.new("L", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), 0)
    ImageDraw.Draw(img).text((pad - x0, pad - y0), ch, font=font, fill=255)
    a = np.asarray(img)
    if int(a.sum(dtype=np.int64)) < MIN_INK_EM2 * 255 * em_px * em_px:
        return None
    rows, cols = np.flatnonzero(a.any(1)), np.flatnonzero(a.any(0))
    return np.ascontiguousarray(a[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1])


def distort(glyph: np.ndarray | Any, image_size: int, rng: np.random.Generator,
            distortion: dict[str, Any] = DISTORTION, glyph_em: int = REF_EM) -> np.ndarray:
    """One random instance of a clean glyph (uint8 array or "L" PIL image cropped to its ink, rendered at an em
    of ``glyph_em`` pixels).

    Returns uint8 ``[image_size, image_size]``. The draws from ``rng`` come in a fixed order, so a generator
    state always gives the same image. Work is done on a ``SUPERSAMPLE`` times larger canvas and area-averaged.
    (Scalar maths in plain Python: this runs ~50,000 times per build and numpy's per-call overhead dominated.)
    """
    from PIL import Image

    d = distortion
    src = glyph if isinstance(glyph, Image.Image) else Image.fromarray(np.asarray(glyph, dtype=np.uint8))
    s_canvas = image_size * SUPERSAMPLE
    u = rng.random(8)
    theta = math.radians(d["rotation_deg"] * (2 * u[0] - 1))
    scale = d["scale"][0] + (d["scale"][1] - d["scale"][0]) * u[1]
    aspect = math.exp(d["aspect"] * (2 * u[2] - 1))
    shear = d["shear"] * (2 * u[3] - 1)
    tx, ty = 2 * u[4] - 1, 2 * u[5] - 1
    stroke = d["stroke_steps"][min(int(np.searchsorted(np.cumsum(d["stroke_probs"]), u[6], side="right")),
                                   len(d["stroke_steps"]) - 1)]
    sigma = d["noise_sigma"][0] + (d["noise_sigma"][1] - d["noise_sigma"][0]) * u[7]
    noise = rng.standard_normal((image_size, image_size), dtype=np.float32)

    w, h = src.size
    # Forward map, glyph pixels -> canvas pixels about the ink centre: A = rotate . shear . scale, where scale 1
    # puts the em square at EM_FRACTION of the canvas.
    base = EM_FRACTION * s_canvas / glyph_em
    sx, sy = base * scale * aspect, base * scale / aspect
    c, s = math.cos(theta), math.sin(theta)
    a00, a01 = c * sx, (c * shear - s) * sy
    a10, a11 = s * sx, (s * shear + c) * sy
    # Extent of the transformed ink box (half-widths |a00| w/2 + |a01| h/2, ...).
    ex = abs(a00) * w + abs(a01) * h
    ey = abs(a10) * w + abs(a11) * h
    # The ink, after interpolation (1 px) and dilation, must stay off the outer ring of output pixels: a glyph is
    # never cut, and the reflect-padding crops of ImageTransform's augment never mirror ink into view.
    margin = SUPERSAMPLE + max(0, max(d["stroke_steps"])) + 1
    limit = min(MAX_EXTENT * s_canvas, s_canvas - 2 * margin)
    fit = min(1.0, limit / max(ex, ey, 1e-6))
    a00, a01, a10, a11, ex, ey = a00 * fit, a01 * fit, a10 * fit, a11 * fit, ex * fit, ey * fit
    # Translation, clipped to the same margin.
    rx, ry = max(0.0, (s_canvas - ex) / 2 - margin), max(0.0, (s_canvas - ey) / 2 - margin)
    cx = s_canvas / 2 + min(rx, max(-rx, tx * d["translate"] * s_canvas))
    cy = s_canvas / 2 + min(ry, max(-ry, ty * d["translate"] * s_canvas))
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
    coeffs = (i00, i01, w / 2 - (i00 * cx + i01 * cy), i10, i11, h / 2 - (i10 * cx + i11 * cy))
    img = src.transform((s_canvas, s_canvas), Image.Transform.AFFINE, coeffs,
                        resample=Image.Resampling.BILINEAR, fillcolor=0)
    big = np.asarray(img, dtype=np.float32)
    if stroke > 0:
        big = _morph(big, stroke, np.maximum)
    elif stroke < 0:
        eroded = _morph(big, -stroke, np.minimum)
        if eroded.sum() >= (1 - d["max_erosion_loss"]) * big.sum():
            big = eroded
    # Area-average down-sampling: each output pixel is the ink coverage of its SUPERSAMPLE^2 block.
    small = big.reshape(image_size, SUPERSAMPLE, image_size, SUPERSAMPLE).mean(axis=(1, 3))
    # A hairline thinner than an output pixel averages to grey; stretch (gain <= MAX_GAIN) so the brightest ink
    # is full white, as in a scanned, thresholded character.
    peak = float(small.max())
    if 0 < peak < 255:
        small *= min(MAX_GAIN, 255.0 / peak)
    small += np.float32(sigma) * noise
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _morph(a: np.ndarray, radius: int, op) -> np.ndarray:
    """Grey dilation (``op=np.maximum``) or erosion (``np.minimum``) by a ``(2r+1)^2`` square, done separably;
    outside the array is background (0), which is what surrounds the glyph."""
    out = a
    for _ in range(radius):  # r steps of a 3x3 square = one (2r+1)^2 square
        for axis in (0, 1):
            src = out
            out = src.copy()
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(None, -1), slice(1, None)
            op(out[tuple(lo)], src[tuple(hi)], out=out[tuple(lo)])
            op(out[tuple(hi)], src[tuple(lo)], out=out[tuple(hi)])
            if op is np.minimum:  # the border pixel's outside neighbour is background
                edge = [slice(None)] * 2
                for idx in (0, -1):
                    edge[axis] = idx
                    out[tuple(edge)] = 0
    return out


def class_rng(seed: int, cp: int) -> np.random.Generator:
    """Generator of one class's face order and distortions: a pure function of (seed, code point)."""
    return np.random.default_rng([seed, cp])


def render_class(job: tuple[int, list[tuple[int, str, int]], int, int, int, dict]) -> dict[str, Any]:
    """All work for one candidate class: clean glyph per face (the ink check), look-alike thumbnails in the
    reference faces, and, if enough faces draw it, the distorted instances."""
    cp, faces, image_size, n_instances, seed, params = job
    clean: dict[int, np.ndarray] = {}
    thumbs: dict[str, np.ndarray] = {}
    exact: dict[str, np.ndarray] = {}
    for face_id, path, code in faces:
        g = render_clean(path, code)
        if g is None:
            continue
        clean[face_id] = g
        if Path(path).stem in params["reference_faces"]:
            thumbs[Path(path).stem] = lookalike_thumbnail(g)
            exact[Path(path).stem] = exact_thumbnail(g)
    out: dict[str, Any] = {"cp": cp, "faces": sorted(clean), "thumbs": thumbs, "exact": exact, "images": None,
                           "face_of": None}
    if len(clean) < params["min_faces"]:
        return out
    from PIL import Image

    # One generator per class, keyed on (seed, code point): the class's images do not depend on which process
    # renders it or in which order.
    rng = class_rng(seed, cp)
    order = rng.permutation(len(out["faces"]))
    face_ids = [out["faces"][i] for i in order]
    sources = {f: Image.fromarray(clean[f]) for f in face_ids[:n_instances]}
    images = np.empty((n_instances, image_size, image_size), dtype=np.uint8)
    face_of = np.empty(n_instances, dtype=np.int16)
    for i in range(n_instances):
        f = face_ids[i % len(face_ids)]
        images[i] = distort(sources[f], image_size, rng, params["distortion"])
        face_of[i] = f
    out["images"], out["face_of"] = images, face_of
    return out
