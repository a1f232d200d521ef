"""Look-alikes and the split by alphabet (pure functions): scale-free thumbnails and their distances, groups of
characters that draw the same picture, whole alphabets dealt to splits, and which classes a spanning group or an
identical twin costs. The module docstring of :mod:`datamodules.images.glyphs` says why ("Look-alikes").
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from datamodules.images.glyphs.fonts import LETTER_SCRIPTS, confusable_key

SPLIT_TARGETS = {"train": 0.64, "val": 0.16, "test": 0.20}
# Look-alike detection (:mod:`datamodules.images.glyphs`, "Look-alikes").
LOOKALIKE_SIZE = 64
#: Normalised squared distance under which two reference renderings count as the same picture. Measured on the
#: reference faces (64x64, from the REF_EM renderings): shared outlines (A / Alpha / Cyrillic A, s / dze, kappa /
#: ka in DejaVu) give 0; separately drawn twins 0.01-0.025 (x / ha, B / Ve, Tau / Te in STIX, which DejaVu draws
#: identically anyway); the closest *distinct* pairs are diacritic variants (E grave / E caron 0.024, U diaeresis
#: / U tilde 0.034), then l / I 0.049, c / C 0.12, E / F 0.09 at their closest face. A pair only needs one face.
LOOKALIKE_THRESHOLD = 0.02
REFERENCE_FACES = ("DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "STIXGeneral")

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
    return "letters" if alphabet in LETTER_SCRIPTS else "symbols"


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
