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
    :func:`safefiles.cached_build`: it writes into a temporary directory beside the target and renames it
    into place, so an interrupted build leaves nothing half-written (and the next build removes its debris); a
    file lock keeps two processes (DDP ranks) from building the same variant at once. The default build takes
    ~35-45 s on 2 cores (2 rendering processes) and 33 MB.

The package, one idea a module: ``fonts`` (faces and Unicode facts), ``render`` (clean glyphs and distortions),
``lookalikes`` (look-alike groups and the split by alphabet), ``build`` (the cached build and loading it) and
``datamodule`` (:class:`GlyphsDataModule`). The names below are the package's API; ``Glyphs`` is the DataModule's
name before issue 22's naming rule.
"""

from datamodules.images.glyphs.build import (BUILDER_VERSION, DATA_FILE, MIN_FACES, GlyphsData, build_glyphs, cache_dir,
                                             load_glyphs, split_report, stale_reason, validate_args)
from datamodules.images.glyphs.datamodule import GlyphsDataModule
from datamodules.images.glyphs.fonts import (CLASS_CATEGORIES, EXCLUDED_FONTS, Face, alphabet_of, block_of, char_name,
                                             class_name, confusable_key, discover_faces, font_checksums, font_dir,
                                             font_files, is_class_candidate, script_of)
from datamodules.images.glyphs.lookalikes import (LOOKALIKE_SIZE, LOOKALIKE_THRESHOLD, REFERENCE_FACES, SPLIT_TARGETS,
                                                  UnionFind, alphabet_kind, assign_alphabets, duplicate_classes,
                                                  exact_thumbnail, lookalike_distance, lookalike_groups,
                                                  lookalike_pairs, lookalike_thumbnail, resolve_lookalikes)
from datamodules.images.glyphs.render import (DISTORTION, EM_FRACTION, MAX_EXTENT, MAX_GAIN, REF_EM, SUPERSAMPLE,
                                              class_rng, distort, render_clean)

Glyphs = GlyphsDataModule  # the name before issue 22's naming rule (zoo.hub.moved.MOVED)

__all__ = ["BUILDER_VERSION", "CLASS_CATEGORIES", "DATA_FILE", "DISTORTION", "EM_FRACTION", "EXCLUDED_FONTS",
           "Face", "Glyphs", "GlyphsData", "GlyphsDataModule", "LOOKALIKE_SIZE", "LOOKALIKE_THRESHOLD", "MAX_EXTENT",
           "MAX_GAIN", "MIN_FACES", "REFERENCE_FACES", "REF_EM", "SPLIT_TARGETS", "SUPERSAMPLE", "UnionFind",
           "alphabet_kind", "alphabet_of", "assign_alphabets", "block_of", "build_glyphs", "cache_dir", "char_name",
           "class_name", "class_rng", "confusable_key", "discover_faces", "distort", "duplicate_classes",
           "exact_thumbnail", "font_checksums", "font_dir", "font_files", "is_class_candidate", "load_glyphs",
           "lookalike_distance", "lookalike_groups", "lookalike_pairs", "lookalike_thumbnail", "render_clean",
           "resolve_lookalikes", "script_of", "split_report", "stale_reason", "validate_args"]
