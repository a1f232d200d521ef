"""Glyphs: an Omniglot-style few-shot image benchmark rendered offline from the fonts that ship inside matplotlib.

Why it exists: the project runs with no network, so the usual few-shot image sets (Omniglot, miniImageNet) may not
be there. matplotlib always is, and its ``mpl-data/fonts/ttf`` holds some thirty real typefaces (DejaVu Sans / Serif
/ Sans Mono with their bold and oblique/italic variants and Display cuts, STIX General in four weights, the
Computer Modern ``cm*`` fonts). Rendering every character those faces share, in every face, with a random
distortion per rendering, gives a benchmark with Omniglot's shape: many classes, few instances per class,
class-disjoint splits by alphabet. Numbers below are for matplotlib 3.11's fonts (Pillow 13, FreeType 2.14).

What a class is
    One Unicode code point (``"U+0041 LATIN CAPITAL LETTER A"``) of a visible category (letters, numbers,
    punctuation, symbols; no combining marks, spaces, controls, private-use or specials) that at least
    ``min_faces`` (default 12) faces *really* contain: the face's cmap maps it to a glyph, and that glyph renders
    ink. The ``cm*`` fonts are not Unicode-encoded (their cmap is TeX's OT1/OML/OMS layout: slot 0x3E is
    "questiondown", 0xA1 is "Gamma"), so for any font whose cmap disagrees with its own glyph names on more than
    5% of entries the coverage is read from the glyph names (Adobe Glyph List) instead, with the few TeX naming
    conventions that differ from Unicode's fixed (``_TEX_GLYPH_FIXES``); names the AGL does not know (``theta1``,
    ``summationtext``) are not used. Excluded faces: ``LastResortHE`` (a placeholder box for *every* code point)
    and the ``STIXSiz*`` fonts (larger sizes of the same STIX delimiters, not distinct designs). 2,321 code points
    qualify, drawn by 12-23 faces (median 12); Hebrew, Arabic, Braille and Lao do not (8-11 faces at most).

What an instance is
    One face rendered with a random distortion, ``instances_per_class`` (default 20) per class, cycling over the
    class's faces in a per-class random order (so each face appears once or twice). Each (class, face) is rendered
    once, clean, at an em of ``REF_EM`` (128) pixels; an instance is that bitmap transformed onto a canvas
    ``SUPERSAMPLE`` (4) times the output size and area-averaged down (antialiasing). The distortion, in order:

    * placement [INTERP]: the em square spans ``EM_FRACTION`` (0.9) of the canvas for every face, so relative
      sizes survive (``o`` is smaller than ``O``, ``.`` is a dot, not a disc) and the ink's bounding box is
      centred (as the spec asks: "centred"; the position on the line is therefore not part of a class). Glyphs
      whose distorted ink box would exceed ``MAX_EXTENT`` (0.92) of the canvas, or come within one output pixel of
      its edge, are shrunk to fit: nothing is ever clipped;
    * affine: rotation U(-12, 12) degrees, scale U(0.8, 1.1) with an aspect jitter of +-10% (log-uniform),
      horizontal shear U(-0.2, 0.2), translation up to 8% of the canvas per axis (clipped to the same margin);
    * stroke width: erode 1, none, dilate 1 or dilate 2 super-sampled pixels (probabilities 0.2/0.45/0.25/0.1),
      i.e. -0.5 .. +1 output pixels of stroke width; an erosion that would remove half the ink (hairlines) is
      skipped;
    * contrast: a hairline thinner than an output pixel averages to grey, so the image is stretched (gain at most
      ``MAX_GAIN`` = 2) until its brightest ink is 255;
    * noise: additive Gaussian pixel noise with sigma U(0, 10) grey levels, then rounding and clipping.

    Images are uint8 ``[M, 1, H, W]``, ink bright (255) on black (0), like MNIST: zero padding is background.

Alphabets and splits
    An alphabet (Omniglot's unit of splitting) is a script for a writing system's characters (Latin, Greek,
    Cyrillic, Armenian, Georgian: a letter and its accented variants live in several Unicode blocks but one
    alphabet) and the Unicode block for signs (Arrows, Box Drawing, Mathematical Operators, Basic Latin's digits
    and punctuation, ...). Whole alphabets go to one split, deterministically and whatever the seed (the seed only
    drives the distortions, so results of different seeds are comparable): within each kind (scripts, sign
    blocks: every split gets both), alphabets are taken largest first and each is given to the split furthest
    below its target share (64/16/20% train/val/test), an alphabet counting the classes it keeps once its
    look-alikes of other alphabets are gone. The result (``manifest.json["alphabets"]``; :func:`split_report`):

    * train, 1,276 classes: Latin; Arrows, Box Drawing, Geometric Shapes, Miscellaneous Technical, Miscellaneous
      Symbols, Miscellaneous Symbols and Arrows, Spacing Modifier Letters' signs, small blocks;
    * val, 337: Cyrillic, Armenian, Georgian; Basic Latin's digits and signs, General Punctuation, Number Forms,
      Currency Symbols, small blocks;
    * test, 385: Greek; Mathematical Operators, Latin-1 Supplement's signs, Block Elements, Modifier Tone
      Letters, Supplemental Arrows-A.

Look-alikes
    Latin A, Greek Alpha and Cyrillic A are the same picture; if they sat in different splits, a "novel" test
    class would be a training class under another name. Look-alikes are found three ways and merged with
    union-find: (1) renderings: every class is drawn clean in four reference faces (DejaVu Sans, Serif, Sans Mono,
    STIX General) and scaled so its ink box fills a 64x64 canvas (scale-free on purpose: a superscript or small-
    capital copy of a letter teaches the letter's shape); two classes look alike when, in some reference face
    both have, ``||a - b||^2 / (||a||^2 + ||b||^2) < LOOKALIKE_THRESHOLD`` (0.02, see its comment); (2)
    compatibility decomposition: NFKC maps one onto the other (KELVIN SIGN -> K, MICRO SIGN -> mu); (3) names:
    the same ``SMALL/CAPITAL LETTER <NAME>`` once the script word is removed (LATIN / GREEK SMALL LETTER ALPHA).
    264 groups result. Then, (a) inside each split, a member whose size-preserving rendering (what an instance
    shows) matches a lower member's on average over the reference faces is dropped as an unsolvable duplicate
    (U+2010 HYPHEN of ``-``, subscript of superscript digits, Greek breathing pairs that differ by a pixel at
    28x28, canonically equal Greek tonos / oxia letters): 110 classes; (b) a group that still spans splits stays
    in the split holding most of it, ties going to the split of its lowest code point (the "original"), and the
    other members are dropped: 213 classes (mostly Greek and Cyrillic letters that are Latin letters' twins).
    Every dropped class and its reason is in ``manifest.json["dropped"]``; 1,998 classes remain.

Cache
    ``<root>/glyphs/<image_size>px-<instances>x-seed<seed>[-sub<hash>]/`` holds ``glyphs.safetensors`` (images,
    labels, faces, codepoints, class_split) and ``manifest.json`` (parameters, font sha256s, renderer versions,
    classes with code point, name, alphabet, block, script, split and faces, look-alike groups, dropped classes,
    the data file's sha256, builder version). It is rebuilt when any of those no longer match (parameters, font
    files, builder version, Pillow/FreeType/numpy version, data checksum). The build goes through
    :func:`datamodules.cache.cached_build`: it writes into a temporary directory beside the target and renames it
    into place, so an interrupted build leaves nothing half-written (and the next build removes its debris); a
    file lock keeps two processes (DDP ranks) from building the same variant at once. The default build takes
    ~35-45 s on 2 cores (2 rendering processes) and 33 MB.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import multiprocessing
import os
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datamodules.cache import MANIFEST_FILE, build_problem, cached_build, data_root, sha256_file
from datamodules.episodes import SPLITS, Source, TensorSource
from datamodules.images.readers import ImageEpisodes
from datamodules.images.transforms import GRAY_MEAN, GRAY_STD
from datamodules.progress import Progress

log = logging.getLogger(__name__)

#: Bump whenever a change to this file changes the bytes a build produces; old caches are then rebuilt.
BUILDER_VERSION = 2

DATA_FILE = "glyphs.safetensors"

MIN_FACES = 12
SUPERSAMPLE = 4
#: Em size (pixels) of the one clean rendering per (class, face) that the ink check, the look-alike thumbnails
#: and every instance start from; fixed, so the class list does not depend on ``image_size``.
REF_EM = 128
EM_FRACTION = 0.9
MAX_EXTENT = 0.92
MAX_GAIN = 2.0
SPLIT_TARGETS = {"train": 0.64, "val": 0.16, "test": 0.20}

#: Random distortion of one instance (see the module docstring). Recorded in the manifest.
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

# Look-alike detection (module docstring, "Look-alikes").
LOOKALIKE_SIZE = 64
#: Normalised squared distance under which two reference renderings count as the same picture. Measured on the
#: reference faces (64x64, from the REF_EM renderings): shared outlines (A / Alpha / Cyrillic A, s / dze, kappa /
#: ka in DejaVu) give 0; separately drawn twins 0.01-0.025 (x / ha, B / Ve, Tau / Te in STIX, which DejaVu draws
#: identically anyway); the closest *distinct* pairs are diacritic variants (E grave / E caron 0.024, U diaeresis
#: / U tilde 0.034), then l / I 0.049, c / C 0.12, E / F 0.09 at their closest face. A pair only needs one face.
LOOKALIKE_THRESHOLD = 0.02
REFERENCE_FACES = ("DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "STIXGeneral")

EXCLUDED_FONTS = ("LastResort", "STIXSiz")
CLASS_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No", "Sm", "Sc", "Sk", "So",
                              "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"})
# Minimum ink (sum of the 0..1 coverage, in em^2) for a glyph to count as drawn; a period is ~0.01 em^2.
MIN_INK_EM2 = 0.002

# Unicode blocks (Blocks.txt) covering every code point the bundled fonts can contribute; the alphabets.
_BLOCKS: tuple[tuple[int, int, str], ...] = (
    (0x0000, 0x007F, "Basic Latin"), (0x0080, 0x00FF, "Latin-1 Supplement"),
    (0x0100, 0x017F, "Latin Extended-A"), (0x0180, 0x024F, "Latin Extended-B"),
    (0x0250, 0x02AF, "IPA Extensions"), (0x02B0, 0x02FF, "Spacing Modifier Letters"),
    (0x0300, 0x036F, "Combining Diacritical Marks"), (0x0370, 0x03FF, "Greek and Coptic"),
    (0x0400, 0x04FF, "Cyrillic"), (0x0500, 0x052F, "Cyrillic Supplement"), (0x0530, 0x058F, "Armenian"),
    (0x0590, 0x05FF, "Hebrew"), (0x0600, 0x06FF, "Arabic"), (0x0700, 0x074F, "Syriac"),
    (0x0750, 0x077F, "Arabic Supplement"), (0x07C0, 0x07FF, "NKo"), (0x0E00, 0x0E7F, "Thai"),
    (0x0E80, 0x0EFF, "Lao"), (0x10A0, 0x10FF, "Georgian"), (0x13A0, 0x13FF, "Cherokee"),
    (0x1400, 0x167F, "Unified Canadian Aboriginal Syllabics"), (0x1680, 0x169F, "Ogham"),
    (0x16A0, 0x16FF, "Runic"), (0x1D00, 0x1D7F, "Phonetic Extensions"),
    (0x1D80, 0x1DBF, "Phonetic Extensions Supplement"), (0x1DC0, 0x1DFF, "Combining Diacritical Marks Supplement"),
    (0x1E00, 0x1EFF, "Latin Extended Additional"), (0x1F00, 0x1FFF, "Greek Extended"),
    (0x2000, 0x206F, "General Punctuation"), (0x2070, 0x209F, "Superscripts and Subscripts"),
    (0x20A0, 0x20CF, "Currency Symbols"), (0x20D0, 0x20FF, "Combining Diacritical Marks for Symbols"),
    (0x2100, 0x214F, "Letterlike Symbols"), (0x2150, 0x218F, "Number Forms"), (0x2190, 0x21FF, "Arrows"),
    (0x2200, 0x22FF, "Mathematical Operators"), (0x2300, 0x23FF, "Miscellaneous Technical"),
    (0x2400, 0x243F, "Control Pictures"), (0x2440, 0x245F, "Optical Character Recognition"),
    (0x2460, 0x24FF, "Enclosed Alphanumerics"), (0x2500, 0x257F, "Box Drawing"),
    (0x2580, 0x259F, "Block Elements"), (0x25A0, 0x25FF, "Geometric Shapes"),
    (0x2600, 0x26FF, "Miscellaneous Symbols"), (0x2700, 0x27BF, "Dingbats"),
    (0x27C0, 0x27EF, "Miscellaneous Mathematical Symbols-A"), (0x27F0, 0x27FF, "Supplemental Arrows-A"),
    (0x2800, 0x28FF, "Braille Patterns"), (0x2900, 0x297F, "Supplemental Arrows-B"),
    (0x2980, 0x29FF, "Miscellaneous Mathematical Symbols-B"),
    (0x2A00, 0x2AFF, "Supplemental Mathematical Operators"), (0x2B00, 0x2BFF, "Miscellaneous Symbols and Arrows"),
    (0x2C00, 0x2C5F, "Glagolitic"), (0x2C60, 0x2C7F, "Latin Extended-C"), (0x2C80, 0x2CFF, "Coptic"),
    (0x2D00, 0x2D2F, "Georgian Supplement"), (0x2D30, 0x2D7F, "Tifinagh"), (0x2DE0, 0x2DFF, "Cyrillic Extended-A"),
    (0x2E00, 0x2E7F, "Supplemental Punctuation"), (0x3000, 0x303F, "CJK Symbols and Punctuation"),
    (0x4DC0, 0x4DFF, "Yijing Hexagram Symbols"), (0xA640, 0xA69F, "Cyrillic Extended-B"),
    (0xA700, 0xA71F, "Modifier Tone Letters"), (0xA720, 0xA7FF, "Latin Extended-D"),
    (0xE000, 0xF8FF, "Private Use Area"), (0xFB00, 0xFB4F, "Alphabetic Presentation Forms"),
    (0xFB50, 0xFDFF, "Arabic Presentation Forms-A"), (0xFE00, 0xFE0F, "Variation Selectors"),
    (0xFE20, 0xFE2F, "Combining Half Marks"), (0xFE70, 0xFEFF, "Arabic Presentation Forms-B"),
    (0xFFF0, 0xFFFF, "Specials"), (0x1D400, 0x1D7FF, "Mathematical Alphanumeric Symbols"),
)
# Blocks that are not a writing system's or a notation's characters.
_EXCLUDED_BLOCKS = frozenset({"Specials", "Private Use Area", "Variation Selectors", "Control Pictures"})

# Coarse script of each block, for reports (an alphabet is a block; a script groups blocks).
_BLOCK_SCRIPT = {
    "Basic Latin": "Latin", "Latin-1 Supplement": "Latin", "Latin Extended-A": "Latin",
    "Latin Extended-B": "Latin", "Latin Extended-C": "Latin", "Latin Extended-D": "Latin",
    "Latin Extended Additional": "Latin", "IPA Extensions": "Latin", "Phonetic Extensions": "Latin",
    "Phonetic Extensions Supplement": "Latin", "Spacing Modifier Letters": "Latin",
    "Modifier Tone Letters": "Latin", "Alphabetic Presentation Forms": "Latin",
    "Greek and Coptic": "Greek", "Greek Extended": "Greek", "Coptic": "Coptic",
    "Cyrillic": "Cyrillic", "Cyrillic Supplement": "Cyrillic", "Cyrillic Extended-A": "Cyrillic",
    "Cyrillic Extended-B": "Cyrillic", "Armenian": "Armenian", "Georgian": "Georgian",
    "Georgian Supplement": "Georgian", "Hebrew": "Hebrew", "Arabic": "Arabic", "Arabic Supplement": "Arabic",
    "Thai": "Thai", "Lao": "Lao",
    "General Punctuation": "Punctuation", "Supplemental Punctuation": "Punctuation",
    "Superscripts and Subscripts": "Superscripts", "Currency Symbols": "Currency",
    "Letterlike Symbols": "Letterlike", "Number Forms": "Number forms",
    "Arrows": "Arrows", "Supplemental Arrows-A": "Arrows", "Supplemental Arrows-B": "Arrows",
    "Miscellaneous Symbols and Arrows": "Arrows",
    "Mathematical Operators": "Math", "Supplemental Mathematical Operators": "Math",
    "Miscellaneous Mathematical Symbols-A": "Math", "Miscellaneous Mathematical Symbols-B": "Math",
    "Mathematical Alphanumeric Symbols": "Math", "Miscellaneous Technical": "Technical",
    "Box Drawing": "Box drawing", "Block Elements": "Block elements", "Geometric Shapes": "Geometric shapes",
    "Miscellaneous Symbols": "Symbols", "Dingbats": "Symbols",
}


# ---------------------------------------------------------------------------------------------------------------
# Fonts
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Face:
    """One font file: its name (file stem), path, sha256 and which code points it really draws.

    ``coverage`` maps a Unicode code point to the character code to hand the renderer (equal for Unicode fonts,
    the TeX slot for the ``cm*`` fonts).
    """

    name: str
    path: str
    sha256: str
    custom_encoding: bool
    coverage: dict[int, int]


# Where a TeX font's glyph name, read through the Adobe Glyph List, names another character than the glyph draws.
# TeX's \phi is the stroked phi (U+03D5) and \varphi the loopy one (U+03C6), the reverse of the AGL's
# phi / phi1; \epsilon is the lunate U+03F5; \heartsuit and \diamondsuit are outlines (U+2661, U+2662); and in
# OT1 italic (cmti10) the slot named "dollar" draws the pound sign. These agree with matplotlib's own tex2uni
# table; each was found by rendering every cm glyph next to DejaVu Serif's rendering of its decoded character.
_TEX_GLYPH_FIXES: dict[str, dict[str, int]] = {
    "cmmi10": {"phi": 0x03D5, "phi1": 0x03C6, "epsilon": 0x03F5, "epsilon1": 0x03B5},
    "cmsy10": {"heart": 0x2661, "diamond": 0x2662},
    "cmti10": {"dollar": 0x00A3},
}


def font_dir() -> Path:
    """matplotlib's bundled TrueType directory."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"




def font_files(directory: str | Path | None = None) -> list[Path]:
    """The font files the benchmark draws from (every ``.ttf`` in ``directory`` except ``EXCLUDED_FONTS``)."""
    directory = Path(directory) if directory is not None else font_dir()
    files = sorted(p for p in directory.glob("*.ttf") if not p.name.startswith(EXCLUDED_FONTS))
    if not files:
        raise FileNotFoundError(f"Glyphs: no .ttf fonts in {directory} (is matplotlib installed with its mpl-data?)")
    return files


def font_checksums(directory: str | Path | None = None) -> dict[str, str]:
    """``{face name: sha256}`` of the font files; what the cache's staleness check compares."""
    return {p.stem: sha256_file(p) for p in font_files(directory)}


def discover_faces(directory: str | Path | None = None) -> list[Face]:
    """Every usable face in ``directory`` (default: matplotlib's) with its real Unicode coverage.

    Coverage comes from the cmap. A font whose cmap disagrees with its own glyph names (decoded with the Adobe
    Glyph List) on more than 5% of entries is taken to be non-Unicode encoded (the TeX-encoded ``cm*`` fonts) and
    its coverage is read from the glyph names instead. Whether the glyph draws anything is checked at render time.
    """
    from fontTools import agl
    from fontTools.ttLib import TTFont

    files = font_files(directory)
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if key in _FACE_CACHE:
        return _FACE_CACHE[key]
    faces = []
    for path in files:
        font = TTFont(str(path), lazy=True)
        cmap = font.getBestCmap() or {}
        decoded = {code: agl.toUnicode(glyph) for code, glyph in cmap.items()}
        decoded = {code: u for code, u in decoded.items() if len(u) == 1}
        disagree = sum(ord(u) != code for code, u in decoded.items())
        custom = bool(decoded) and disagree > 0.05 * len(decoded)
        if custom:
            fixes = _TEX_GLYPH_FIXES.get(path.stem, {})
            for code, glyph in cmap.items():
                if glyph in fixes:
                    decoded[code] = chr(fixes[glyph])
            coverage: dict[int, int] = {}
            for code in sorted(decoded):
                coverage.setdefault(ord(decoded[code]), code)
        else:
            coverage = {code: code for code in cmap}
        font.close()
        faces.append(Face(path.stem, str(path), sha256_file(path), custom, coverage))
    _FACE_CACHE[key] = faces
    return faces


_FACE_CACHE: dict[tuple, list[Face]] = {}


# ---------------------------------------------------------------------------------------------------------------
# Unicode facts
# ---------------------------------------------------------------------------------------------------------------
def block_of(cp: int) -> str:
    """Unicode block name of ``cp`` (an alphabet of this benchmark); unknown blocks get a range name."""
    for lo, hi, name in _BLOCKS:
        if lo <= cp <= hi:
            return name
    return f"Block U+{cp >> 7 << 7:04X}"


_LETTER_SCRIPTS = ("Latin", "Greek", "Coptic", "Cyrillic", "Armenian", "Georgian", "Hebrew", "Arabic", "Thai",
                   "Lao")


def script_of(cp: int) -> str:
    """Script of ``cp``: the script word that opens its name (``GREEK SMALL LETTER ALPHA``, ``LATIN SUBSCRIPT SMALL
    LETTER A``, ``ARMENIAN QUESTION MARK``); else, for the letters of a script's block (``MODIFIER LETTER SMALL
    H``), that script; else "Common" for the other signs of a script's block (ASCII digits and punctuation), and
    the block's theme for everything else ("Arrows", "Math", "Box drawing", ...)."""
    first = unicodedata.name(chr(cp), " ").split()[0].title()
    if first in _LETTER_SCRIPTS:
        return first
    family = _BLOCK_SCRIPT.get(block_of(cp), block_of(cp))
    if family in _LETTER_SCRIPTS:
        return family if unicodedata.category(chr(cp)).startswith("L") else "Common"
    return family


def alphabet_of(cp: int) -> str:
    """The alphabet (Omniglot's unit of splitting) of ``cp``: its script for a writing system's characters, its
    Unicode block for everything else (Arrows, Box Drawing, Mathematical Operators, Basic Latin's digits and
    signs, ...). Splitting letters by script rather than block keeps a letter and its accented variants
    (A, \u00c1, \u1ea0 live in three blocks) in one split, as Omniglot keeps an alphabet's characters together."""
    script = script_of(cp)
    return script if script in _LETTER_SCRIPTS else block_of(cp)


def char_name(cp: int) -> str:
    return unicodedata.name(chr(cp), f"CODE POINT {cp:04X}")


def class_name(cp: int) -> str:
    """``"U+0041 LATIN CAPITAL LETTER A"``."""
    return f"U+{cp:04X} {char_name(cp)}"


def is_class_candidate(cp: int) -> bool:
    return unicodedata.category(chr(cp)) in CLASS_CATEGORIES and block_of(cp) not in _EXCLUDED_BLOCKS


_SCRIPT_WORDS = ("LATIN", "GREEK", "CYRILLIC", "COPTIC", "ARMENIAN", "GEORGIAN", "HEBREW", "ARABIC")


def confusable_key(cp: int) -> str | None:
    """A name-based identity for cross-script letters: ``"SMALL LETTER ALPHA"`` for both ``LATIN SMALL LETTER
    ALPHA`` and ``GREEK SMALL LETTER ALPHA``.

    Only for names ``<SCRIPT> SMALL|CAPITAL LETTER <X...>`` whose last word has three or more letters: Cyrillic
    names such as ``CYRILLIC CAPITAL LETTER I`` (the letter that looks like a mirrored N) or ``... LETTER U`` name a
    sound, not a shape, and would pair unrelated pictures with Latin I and U. Longer names (ALPHA, SCHWA, DELTA,
    IOTA, PHI, ESH, EZH) are borrowed letters and do share their shape.
    """
    words = unicodedata.name(chr(cp), "").split()
    if (len(words) < 4 or words[0] not in _SCRIPT_WORDS or words[1] not in ("SMALL", "CAPITAL")
            or words[2] != "LETTER" or len(words[-1]) < 3):
        return None
    return " ".join(words[1:])


# ---------------------------------------------------------------------------------------------------------------
# Rendering (runs in worker processes; everything here is a pure function of its arguments)
# ---------------------------------------------------------------------------------------------------------------
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


def lookalike_thumbnail(glyph: np.ndarray, size: int = LOOKALIKE_SIZE) -> np.ndarray:
    """Clean glyph (uint8, cropped) scaled with its aspect kept so its ink box spans ``size - 4`` pixels, centred.

    Scale-free on purpose: a superscript ``h`` or a small-capital ``A`` has the shape of ``h`` / ``A``.
    """
    from PIL import Image

    h, w = glyph.shape
    inner = size - 4
    f = inner / max(h, w)
    nh, nw = max(1, round(h * f)), max(1, round(w * f))
    resample = Image.Resampling.BOX if f < 1 else Image.Resampling.BICUBIC
    g = Image.fromarray(glyph).resize((nw, nh), resample)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(g, ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def exact_thumbnail(glyph: np.ndarray, size: int = LOOKALIKE_SIZE, factor: int = 4) -> np.ndarray:
    """Clean glyph (rendered at ``REF_EM``) shrunk by ``factor`` keeping its size relative to the em, ink box
    centred in a ``size`` canvas (clipped if larger): the picture an instance shows before distortion."""
    from PIL import Image

    h, w = glyph.shape
    nh, nw = max(1, round(h / factor)), max(1, round(w / factor))
    g = np.asarray(Image.fromarray(glyph).resize((nw, nh), Image.Resampling.BOX))[:size, :size]
    canvas = np.zeros((size, size), dtype=np.uint8)
    top, left = (size - g.shape[0]) // 2, (size - g.shape[1]) // 2
    canvas[top: top + g.shape[0], left: left + g.shape[1]] = g
    return canvas


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


def _render_class(job: tuple[int, list[tuple[int, str, int]], int, int, int, dict]) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------------------------------------------
# Look-alikes and splits (pure functions)
# ---------------------------------------------------------------------------------------------------------------
class UnionFind:
    def __init__(self, items: Iterable[int]):
        self.parent = {x: x for x in items}

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the smallest code point is the root: deterministic

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for x in self.parent:
            out[self.find(x)].append(x)
        return sorted(sorted(g) for g in out.values())


def lookalike_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise ``||a_i - b_j||^2 / (||a_i||^2 + ||b_j||^2)`` between rows: 0 for identical pictures, 1 for
    pictures with disjoint ink. ``a``: [n, D], ``b``: [m, D] -> [n, m]."""
    # float32 is enough: the threshold is 0.02 and the cancellation error of 1 - 2ab/(a^2+b^2) is ~1e-6.
    a = np.asarray(a, dtype=np.float32).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float32).reshape(len(b), -1)
    na, nb = (a * a).sum(1), (b * b).sum(1)
    denom = na[:, None] + nb[None, :]
    return 1.0 - 2.0 * (a @ b.T) / np.maximum(denom, 1e-12)


def lookalike_pairs(codepoints: Sequence[int], thumbs: dict[str, dict[int, np.ndarray]],
                    threshold: float = LOOKALIKE_THRESHOLD) -> set[tuple[int, int]]:
    """Pairs ``(cp_a, cp_b)``, ``cp_a < cp_b``, that look alike in at least one reference face both have."""
    pairs: set[tuple[int, int]] = set()
    for face in sorted(thumbs):
        have = [cp for cp in codepoints if cp in thumbs[face]]
        if len(have) < 2:
            continue
        x = np.stack([thumbs[face][cp].astype(np.float32).ravel() / 255.0 for cp in have])
        dist = lookalike_distance(x, x)
        ii, jj = np.nonzero(np.triu(dist < threshold, k=1))
        pairs.update((have[i], have[j]) for i, j in zip(ii.tolist(), jj.tolist()))
    return pairs


def lookalike_groups(codepoints: Sequence[int], pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Union-find of rendering pairs, NFKC identities and name identities; groups of two or more, sorted."""
    cps = sorted(set(codepoints))
    present = set(cps)
    uf = UnionFind(cps)
    for a, b in pairs:
        if a in present and b in present:
            uf.union(a, b)
    for cp in cps:
        folded = unicodedata.normalize("NFKC", chr(cp))
        if len(folded) == 1 and ord(folded) in present:
            uf.union(cp, ord(folded))
    by_key: dict[str, int] = {}
    for cp in cps:
        key = confusable_key(cp)
        if key is not None:
            if key in by_key:
                uf.union(by_key[key], cp)
            else:
                by_key[key] = cp
    return [g for g in uf.groups() if len(g) > 1]


def alphabet_kind(alphabet: str) -> str:
    """``"letters"`` for a script's alphabet, ``"symbols"`` for a block of signs."""
    return "letters" if alphabet in _LETTER_SCRIPTS else "symbols"


def assign_alphabets(alphabet_sizes: dict[str, int], alphabet_order: dict[str, int],
                     alphabet_kinds: dict[str, str] | None = None,
                     targets: dict[str, float] = SPLIT_TARGETS) -> dict[str, str]:
    """Whole alphabets to splits, deterministically and independently of any seed.

    Within each kind (letters / symbols, so that every split gets scripts *and* symbol sets), alphabets are taken
    largest first (ties by ``alphabet_order``) and each goes to the split furthest below its target number of
    classes of that kind (ties: train, val, test).
    """
    kinds = alphabet_kinds or {name: "all" for name in alphabet_sizes}
    out = {}
    for kind in sorted(set(kinds.values())):
        names = [n for n in alphabet_sizes if kinds[n] == kind]
        total = sum(alphabet_sizes[n] for n in names)
        filled = {s: 0 for s in targets}
        for name in sorted(names, key=lambda n: (-alphabet_sizes[n], alphabet_order[n], n)):
            split = max(targets, key=lambda s: (targets[s] * total - filled[s], -list(targets).index(s)))
            out[name] = split
            filled[split] += alphabet_sizes[name]
    return out


def resolve_lookalikes(split_of: dict[int, str], groups: Sequence[Sequence[int]]) -> dict[int, str]:
    """Code points to drop so that no look-alike group spans two splits: ``{cp: reason}``.

    A spanning group stays in the split that holds most of its members (fewest classes lost); on a tie, in the
    split of its lowest code point, the "original" (Latin A rather than Greek Alpha or Cyrillic A). Members in
    the other splits are dropped.
    """
    dropped = {}
    for group in groups:
        members = sorted(cp for cp in group if cp in split_of)
        counts = Counter(split_of[cp] for cp in members)
        if len(counts) < 2:
            continue
        keep = max(counts, key=lambda s: (counts[s], s == split_of[members[0]]))
        for cp in members:
            if split_of[cp] != keep:
                twins = [f"U+{o:04X}" for o in members if split_of[o] == keep][:3]
                dropped[cp] = f"looks like {', '.join(twins)} ({keep})"
    return dropped


def duplicate_classes(groups: Sequence[Sequence[int]], split_of: dict[int, str],
                      exact: dict[str, dict[int, np.ndarray]], threshold: float = LOOKALIKE_THRESHOLD
                      ) -> dict[int, str]:
    """Classes that no learner could tell apart from a lower code point of their split: ``{cp: reason}``.

    Look-alike detection is scale-free on purpose (for leakage); within a split only *identical pictures* are a
    problem, an unsolvable pair in an episode: two members of one group whose size-preserving renderings
    (:func:`exact_thumbnail`, as the instances show them) are closer than ``threshold`` on average over the
    reference faces they share (``-`` and U+2010 HYPHEN, superscript and subscript parentheses once centred).
    The higher code point is dropped.
    """
    dropped: dict[int, str] = {}
    for group in groups:
        kept: list[int] = []
        for cp in sorted(c for c in group if c in split_of):
            twin = None
            for other in kept:
                if split_of[other] != split_of[cp]:
                    continue
                shared = [f for f in sorted(exact) if cp in exact[f] and other in exact[f]]
                if shared:
                    x = np.stack([exact[f][cp].ravel() for f in shared]).astype(np.float32) / 255.0
                    y = np.stack([exact[f][other].ravel() for f in shared]).astype(np.float32) / 255.0
                    d = np.diag(lookalike_distance(x, y))
                    if float(d.mean()) < threshold:
                        twin = other
                        break
            if twin is None:
                kept.append(cp)
            else:
                dropped[cp] = f"same picture as U+{twin:04X} ({split_of[cp]})"
    return dropped


# ---------------------------------------------------------------------------------------------------------------
# Build, cache, load
# ---------------------------------------------------------------------------------------------------------------


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


def _validate_args(image_size: int, instances_per_class: int, min_faces: int) -> None:
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"Glyphs: image_size must be an int >= 8, got {image_size!r}")
    if not isinstance(instances_per_class, int) or instances_per_class < 1:
        raise ValueError(f"Glyphs: instances_per_class must be an int >= 1, got {instances_per_class!r}")
    if not isinstance(min_faces, int) or min_faces < 1:
        raise ValueError(f"Glyphs: min_faces must be an int >= 1, got {min_faces!r}")


def _spec(params: dict[str, Any], fonts: dict[str, str] | None = None) -> dict[str, Any]:
    """What a build depends on, as :func:`datamodules.cache.cached_build` compares it with the manifest."""
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
    _validate_args(image_size, instances_per_class, min_faces)
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
                rendered = stack.enter_context(_pool(workers)).imap(_render_class, jobs, chunksize=16)
            else:
                rendered = map(_render_class, jobs)
            for r in rendered:  # imap yields in job order as classes finish: the count is what is done
                results.append(r)
                bar.update()

    log.info("Glyphs: rendered %d candidates x %d instances with %d process(es) in %.1f s", len(jobs), n_inst,
             workers, time.perf_counter() - t0)
    return results


def _write_build(out: Path, params: dict[str, Any], faces: Sequence[Face],
                 results: list[dict[str, Any]]) -> dict[str, Any]:
    """Qualify classes, split alphabets, separate look-alikes, write the data file; return the manifest's fields
    (:func:`datamodules.cache.cached_build` adds the spec and the files' checksums and writes it last)."""
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


# ---------------------------------------------------------------------------------------------------------------
# DataModule
# ---------------------------------------------------------------------------------------------------------------
class Glyphs(ImageEpisodes):
    """N-way K-shot episodes over the Glyphs benchmark (module docstring): ~2,000 characters, 20 renderings each.

    Args:
        cache_dir: where the build goes, as ``<cache_dir>/glyphs/<variant>`` (default ``$METAZOO_DATA`` or
            ``~/.cache/metazoo``); built there on first use. The sources are the fonts matplotlib installs.
        image_size: side of the square grayscale images (28 as Omniglot in Vinyals et al.).
        instances_per_class: renderings per class (>= k_shot + q_query).
        build_seed: seed of the rendering distortions (the data); ``seed`` keys the episodes.
        augment: random crop after 2-pixel reflect padding at training time (no flips: mirrored glyphs differ).
        invert: for ``zoo predict`` only: invert the user's images, which are usually dark ink on light paper,
            to the benchmark's white ink on black (set false for images that already are light on dark).
        predict_support_dir, predict_query_dir, predict_query_chunk: ``zoo predict`` on your own character
            images (see :class:`~datamodules.images.ImageEpisodes`).
        n_way ... episodes_per_batch: see :class:`~datamodules.base.EpisodicDataModule`.
    """

    def __init__(self, cache_dir: str | None = None, image_size: int = 28, instances_per_class: int = 20,
                 build_seed: int = 0, augment: bool = False, invert: bool = True,
                 predict_support_dir: str | None = None, predict_query_dir: str | None = None,
                 predict_query_chunk: int | None = None, n_way: int = 5, k_shot: int = 1, q_query: int = 15,
                 train_n_way: int | None = None, train_k_shot: int | None = None, train_q_query: int | None = None,
                 train_episodes: int = 100, val_episodes: int = 500, test_episodes: int = 1000, seed: int = 0,
                 eval_seed: int | None = None, num_workers: int = 0, episodes_per_batch: int = 1):
        super().__init__(image_size=image_size, channels=1, mean=list(GRAY_MEAN), std=list(GRAY_STD),
                         augment=augment, augment_pad=2, augment_flip=False, invert=invert,
                         predict_support_dir=predict_support_dir, predict_query_dir=predict_query_dir,
                         predict_query_chunk=predict_query_chunk, n_way=n_way, k_shot=k_shot, q_query=q_query,
                         train_n_way=train_n_way, train_k_shot=train_k_shot, train_q_query=train_q_query,
                         train_episodes=train_episodes, val_episodes=val_episodes, test_episodes=test_episodes,
                         seed=seed, eval_seed=eval_seed, num_workers=num_workers,
                         episodes_per_batch=episodes_per_batch)
        _validate_args(image_size, instances_per_class, MIN_FACES)
        self.save_hyperparameters()
        self.cache_dir, self.instances_per_class, self.build_seed = cache_dir, instances_per_class, build_seed
        # Tests narrow the classes (and thus the build) through this attribute; it is not a config switch.
        self._codepoints: Sequence[int] | None = None
        self.data: GlyphsData | None = None

    def prepare_data(self) -> None:
        """Builds the cache once (Lightning calls this on one process per node before ``setup``); not for
        ``zoo predict``, which reads only its two folders (:meth:`predicting`)."""
        if self.predicting():
            return
        build_glyphs(self.cache_dir, self.image_size, self.instances_per_class, self.build_seed,
                     codepoints=self._codepoints)

    def build_sources(self) -> dict[str, Source]:
        self.data = data = load_glyphs(self.cache_dir, self.image_size, self.instances_per_class, self.build_seed,
                                       codepoints=self._codepoints)
        names = {i: class_name(int(cp)) for i, cp in enumerate(data.codepoints.tolist())}
        images = torch.from_numpy(data.images)
        labels = torch.from_numpy(data.labels)
        item_split = torch.from_numpy(data.class_split.astype(np.int64))[labels]
        sources: dict[str, Source] = {}
        for k, split in enumerate(SPLITS):
            idx = torch.nonzero(item_split == k).squeeze(1)
            split_labels = labels[idx]
            sources[split] = TensorSource(images[idx].contiguous(), split_labels,
                                          {int(c): names[int(c)] for c in split_labels.unique()},
                                          self.transform(split))
        return sources
