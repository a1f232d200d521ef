"""What the semi-factual views of a relation instance need from the data: entity types and synonym-replaced context.

GPAM (``zoo.methods.gpam``) encodes each instance four times: as written, with the head entity replaced by its type, with
the tail entity replaced by its type, and with a share of the context words replaced by WordNet synonyms. The first
three only need the instance's tokens, spans and two type strings; the last needs WordNet, so it is computed here,
once per instance, as the ``context_tokens`` field (same length as ``tokens``: only single-word synonyms are used,
so the entity spans stay where they are). Entity tokens are never replaced.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from datamodules.wordnet import WordNet

_ALPHA = re.compile(r"^[A-Za-z]+$")


def _unit(*key: object) -> float:
    """A deterministic number in [0, 1) from ``key`` (the same instance always gets the same view)."""
    digest = hashlib.blake2b("/".join(map(str, key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


class SynonymTable:
    """Lower-cased word -> its single-word WordNet synonyms (the other lemmas of the word's first sense of each part
    of speech, nouns first), built from the parsed database."""

    def __init__(self, wn: WordNet):
        self.synonyms: dict[str, list[str]] = {}
        for pos in ("n", "v", "a", "r"):
            suffix = f".{pos}.01"
            for name, key in wn.keys.items():
                if not name.endswith(suffix):
                    continue
                word = name[: -len(suffix)]
                if not _ALPHA.match(word):
                    continue
                others = [w for w in wn.synsets[key].lemmas if w.lower() != word and _ALPHA.match(w)]
                if others:
                    have = self.synonyms.setdefault(word, [])
                    have += [w.lower() for w in others if w.lower() not in have]

    def __len__(self) -> int:
        return len(self.synonyms)

    def get(self, word: str) -> list[str]:
        return self.synonyms.get(word.lower(), [])


def context_debiased(tokens: Sequence[str], head: Sequence[int], tail: Sequence[int], rate: float, key: str,
                     table: SynonymTable, min_length: int = 4) -> list[str]:
    """``tokens`` with about ``rate`` of the replaceable context words swapped for a WordNet synonym.

    A context word (outside the inclusive ``head`` and ``tail`` spans, alphabetic, at least ``min_length`` letters
    so that function words stay) is replaced when a hash of ``(key, position)`` falls below ``rate``; the synonym
    is chosen by another hash. ``key`` names the instance, so its view is the same in every episode and run.
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"synonym rate must be in [0, 1], got {rate}")
    out = list(tokens)
    for i, tok in enumerate(tokens):
        if head[0] <= i <= head[1] or tail[0] <= i <= tail[1] or len(tok) < min_length or not _ALPHA.match(tok):
            continue
        syns = table.get(tok)
        if syns and _unit(key, i) < rate:
            out[i] = syns[int(_unit(key, i, "pick") * len(syns))]
    return out
