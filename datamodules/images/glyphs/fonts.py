"""The fonts Glyphs draws from and the Unicode facts about its classes: which faces matplotlib ships, which code
points each really draws (:class:`Face`), and a code point's block (its alphabet), script, name and confusable
key. See :mod:`datamodules.images.glyphs` for the benchmark as a whole.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from safefiles import sha256_file

EXCLUDED_FONTS = ("LastResort", "STIXSiz")
CLASS_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No", "Sm", "Sc", "Sk", "So",
                              "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"})
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


LETTER_SCRIPTS = ("Latin", "Greek", "Coptic", "Cyrillic", "Armenian", "Georgian", "Hebrew", "Arabic", "Thai",
                   "Lao")


def script_of(cp: int) -> str:
    """Script of ``cp``: the script word that opens its name (``GREEK SMALL LETTER ALPHA``, ``LATIN SUBSCRIPT SMALL
    LETTER A``, ``ARMENIAN QUESTION MARK``); else, for the letters of a script's block (``MODIFIER LETTER SMALL
    H``), that script; else "Common" for the other signs of a script's block (ASCII digits and punctuation), and
    the block's theme for everything else ("Arrows", "Math", "Box drawing", ...)."""
    first = unicodedata.name(chr(cp), " ").split()[0].title()
    if first in LETTER_SCRIPTS:
        return first
    family = _BLOCK_SCRIPT.get(block_of(cp), block_of(cp))
    if family in LETTER_SCRIPTS:
        return family if unicodedata.category(chr(cp)).startswith("L") else "Common"
    return family


def alphabet_of(cp: int) -> str:
    """The alphabet (Omniglot's unit of splitting) of ``cp``: its script for a writing system's characters, its
    Unicode block for everything else (Arrows, Box Drawing, Mathematical Operators, Basic Latin's digits and
    signs, ...). Splitting letters by script rather than block keeps a letter and its accented variants
    (A, \u00c1, \u1ea0 live in three blocks) in one split, as Omniglot keeps an alphabet's characters together."""
    script = script_of(cp)
    return script if script in LETTER_SCRIPTS else block_of(cp)


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
