"""Entity-marker encoding of relation instances with any Hugging Face encoder directory (default the offline MiniLM).

An instance is ``(tokens, head, tail)`` with inclusive token spans. It is written as one string with the entities
wrapped in marker characters (Zhou & Chen 2021's punctuation markers ``@ head @`` and ``# tail #`` by default,
which every BERT-style vocabulary holds, unlike FewRel's ``[unused0]`` markers that a fast tokenizer splits), the
character span of each entity is carried through the tokenizer's offset mapping onto sub-word positions, and the
instance is represented by ``concat(h_head, h_tail)`` of the last layer (``pooling="span"``: the mean over each
entity's sub-words; ``"marker"``: the state of the opening marker, as D-Proto's ``--cat_entity_rep``).

Real sentences can be longer than the encoder (``max_length`` sub-words, special tokens included). Such a
sentence is encoded through a window that holds both entities (:func:`entity_window`): the sub-words from the first
opening marker to the last closing marker, plus as much context as the budget leaves, split evenly between the
left and the right (what one side lacks, because the sentence ends there, goes to the other), then shrunk to whole
words. (The thunlp/FewRel toolkit's encoders instead cut the sentence at ``max_length`` and clamp an entity
position past it to the last sub-word, which represents that entity by an unrelated token.) Only when the two
entities with the words between them do not fit in ``max_length`` is it an error, naming the instance and the
length it needs, never a silent zero vector. With a frozen encoder the features are cached per marked string (``2 * hidden`` floats each, about
twenty times less than its token states), shared by every module of the process that uses the same weights files,
length and pooling: a benchmark encodes each view of each instance once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

_SHARED: dict[tuple, dict[str, torch.Tensor]] = {}
POOLINGS = ("span", "marker")


def mark_entities(tokens: Sequence[str], head: Sequence[int], tail: Sequence[int],
                  head_markers: tuple[str, str] = ("@", "@"), tail_markers: tuple[str, str] = ("#", "#"),
                  where: str = "instance") -> tuple[str, tuple[int, int], tuple[int, int], int, int]:
    """The marked string, the character spans ``[start, end)`` of the head and tail words, and the character
    offsets of the two opening markers. Spans are inclusive token indices; a span outside the tokens is an error
    naming ``where``."""
    n = len(tokens)
    for name, span in (("head", head), ("tail", tail)):
        if not 0 <= int(span[0]) <= int(span[1]) < n:
            raise ValueError(f"{where}: {name} span {list(map(int, span))} is outside its {n} tokens")
    if int(head[0]) <= int(tail[1]) and int(tail[0]) <= int(head[1]):
        raise ValueError(f"{where}: head span {list(map(int, head))} and tail span {list(map(int, tail))} overlap")
    opens = {int(head[0]): head_markers[0], int(tail[0]): tail_markers[0]}
    closes = {int(head[1]): head_markers[1], int(tail[1]): tail_markers[1]}
    parts: list[str] = []
    length = 0
    chars: dict[str, list[int]] = {}
    marks: dict[str, int] = {}

    def add(piece: str) -> int:
        nonlocal length
        if parts:
            length += 1
        start = length
        parts.append(piece)
        length += len(piece)
        return start

    for i, tok in enumerate(tokens):
        which = "head" if int(head[0]) <= i <= int(head[1]) else "tail" if int(tail[0]) <= i <= int(tail[1]) else None
        if i in opens:
            marks[which] = add(opens[i])
        start = add(tok)
        if which is not None:
            span = chars.setdefault(which, [start, start + len(tok)])
            span[1] = start + len(tok)
        if i in closes:
            add(closes[i])
    return " ".join(parts), tuple(chars["head"]), tuple(chars["tail"]), marks["head"], marks["tail"]


def subword_span(offsets: torch.Tensor, start: int, end: int) -> tuple[int, int] | None:
    """First and last sub-word positions whose character offsets overlap ``[start, end)``; None if none does
    (the characters were truncated away). Special tokens have offsets ``(0, 0)`` and never overlap."""
    s, e = offsets[:, 0], offsets[:, 1]
    hit = ((e > s) & (s < end) & (e > start)).nonzero().flatten()
    if hit.numel() == 0:
        return None
    return int(hit[0]), int(hit[-1])


def entity_window(offsets: Sequence[Sequence[int]], text: str, lo: int, hi: int, budget: int) -> tuple[int, int]:
    """Character range ``[start, end)`` of ``text`` to encode when its sub-words do not fit in ``budget``.

    ``offsets``: each sub-word's character span (no special tokens); ``[lo, hi)``: the characters from the first
    opening entity marker to the last closing one. The window holds the sub-words of ``[lo, hi)`` and up to
    ``budget`` sub-words in all: the spare budget is split evenly between left and right context (shifted to one
    side where the sentence ends on the other), then shrunk to whole words (a sub-word starts a word when it
    starts the text or follows a space), so re-tokenising the cut text gives at most ``budget`` sub-words. Raises
    ``ValueError`` when ``[lo, hi)`` alone needs more than ``budget`` sub-words.
    """
    n = len(offsets)
    if n <= budget:
        return 0, len(text)
    inside = [i for i, (s, e) in enumerate(offsets) if e > s and s < hi and e > lo]
    a, b = inside[0], inside[-1]
    need = b - a + 1
    if need > budget:
        raise ValueError(f"the two entities and the words between them take {need} sub-words, more than the "
                         f"{budget} that max_length leaves; raise max_length to at least {need + 2}")
    start = min(max(a - (budget - need) // 2, 0), n - budget)
    end = start + budget - 1  # inclusive

    def starts_word(i: int) -> bool:
        return offsets[i][0] == 0 or text[offsets[i][0] - 1] == " "

    while not starts_word(start):  # never past a: the opening marker starts a word
        start += 1
    while end + 1 < n and not starts_word(end + 1):  # never before b: the closing marker ends a word
        end -= 1
    return int(offsets[start][0]), int(offsets[end][1])


@functools.lru_cache(maxsize=1 << 18)
def _cached_mark(tokens: tuple[str, ...], h0: int, h1: int, t0: int, t1: int, head_markers: tuple[str, str],
                 tail_markers: tuple[str, str]) -> tuple[str, tuple[int, int], tuple[int, int], int, int]:
    return mark_entities(tokens, (h0, h1), (t0, t1), head_markers, tail_markers)


def _marked(tokens: tuple[str, ...], h0: int, h1: int, t0: int, t1: int, head_markers: tuple[str, str],
            tail_markers: tuple[str, str], where: str) -> tuple[str, tuple[int, int], tuple[int, int], int, int]:
    """:func:`mark_entities`, memoised (an instance is marked once however many episodes it appears in); a bad
    span is checked first so that its error names ``where``."""
    for name, (a, b) in (("head", (h0, h1)), ("tail", (t0, t1))):
        if not 0 <= a <= b < len(tokens):
            raise ValueError(f"{where}: {name} span {[a, b]} is outside its {len(tokens)} tokens")
    try:
        return _cached_mark(tokens, h0, h1, t0, t1, head_markers, tail_markers)
    except ValueError as err:
        raise ValueError(f"{where}: {str(err).split(': ', 1)[-1]}") from None


class EntityMarkerEncoder(nn.Module):
    """Relation instances -> ``[B, 2 * hidden]`` entity features (see the module docstring).

    Args:
        encoder: a :class:`zoo.nn.text_encoder.TextEncoder` (its tokenizer, transformer, ``max_length`` and ``freeze``
            are used; its pooling and projection are not).
        pooling: ``"span"`` or ``"marker"``.
        head_markers / tail_markers: the opening and closing marker strings.
    """

    def __init__(self, encoder: nn.Module, pooling: str = "span", head_markers: tuple[str, str] = ("@", "@"),
                 tail_markers: tuple[str, str] = ("#", "#")):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"entity pooling must be one of {POOLINGS}, got {pooling!r}")
        for attr in ("tokenizer", "model", "max_length", "hidden_dim"):
            if not hasattr(encoder, attr):
                raise TypeError(f"EntityMarkerEncoder needs a zoo.nn.text_encoder.TextEncoder (no .{attr}), got "
                                f"{type(encoder).__name__}")
        self.encoder, self.pooling = encoder, pooling
        self.head_markers, self.tail_markers = tuple(head_markers), tuple(tail_markers)
        self.out_dim = 2 * int(encoder.hidden_dim)
        self.frozen = bool(getattr(encoder, "freeze", False))
        source = encoder.model_dir or str(Path(getattr(encoder.model, "name_or_path", "")))
        key = (source, encoder.max_length, pooling, self.head_markers, self.tail_markers)
        self._cache: dict[str, torch.Tensor] = _SHARED.setdefault(key, {}) if self.frozen else {}

    def windowed(self, texts: list[str], chars: list[tuple], wheres: list[str]) -> tuple[list[str], list[tuple]]:
        """Each text cut to the window of :func:`entity_window` where it is longer than ``max_length`` allows, with
        its character spans and marker offsets shifted to match (texts that fit are returned as they are)."""
        tok = self.encoder.tokenizer
        budget = self.encoder.max_length - tok.num_special_tokens_to_add(pair=False)
        offsets = tok(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        out_texts, out_chars = [], []
        for text, (h, t, hm, tm), offs, where in zip(texts, chars, offsets, wheres):
            if len(offs) <= budget:
                out_texts.append(text)
                out_chars.append((h, t, hm, tm))
                continue
            lo = min(hm, tm)
            hi = max(h[1] + 1 + len(self.head_markers[1]), t[1] + 1 + len(self.tail_markers[1]))
            try:
                start, end = entity_window(offs, text, lo, hi, budget)
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None
            out_texts.append(text[start:end])
            out_chars.append(((h[0] - start, h[1] - start), (t[0] - start, t[1] - start), hm - start, tm - start))
        return out_texts, out_chars

    def _encode(self, texts: list[str], chars: list[tuple], wheres: list[str]) -> torch.Tensor:
        texts, chars = self.windowed(texts, chars, wheres)
        enc = self.encoder.tokenizer(texts, padding=True, truncation=True, max_length=self.encoder.max_length,
                                     return_offsets_mapping=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping")
        device = self.encoder.device
        states = self.encoder.model(**{k: v.to(device) for k, v in enc.items()}).last_hidden_state
        rows = []
        for b, (h_chars, t_chars, h_mark, t_mark) in enumerate(chars):
            feats = []
            for name, span, mark in (("head", h_chars, h_mark), ("tail", t_chars, t_mark)):
                pos = subword_span(offsets[b], *span) if self.pooling == "span" else \
                    subword_span(offsets[b], mark, mark + 1)
                if pos is None:  # cannot happen after windowing unless the tokenizer splits a word differently
                    raise ValueError(f"{wheres[b]}: the {name} entity lies beyond the encoder's max_length "
                                     f"({self.encoder.max_length} sub-words); raise max_length")
                feats.append(states[b, pos[0]: pos[1] + 1].mean(0))
            rows.append(torch.cat(feats))
        return torch.stack(rows)

    def forward(self, instances: Sequence[tuple[Sequence[str], Sequence[int], Sequence[int]]],
                names: Sequence[str] | None = None) -> torch.Tensor:
        """``instances``: ``(tokens, head, tail)`` each; ``names`` label them in errors (default their position)."""
        wheres = list(names) if names is not None else [f"instance {i}" for i in range(len(instances))]
        marked = [_marked(tuple(t), int(h[0]), int(h[1]), int(tl[0]), int(tl[1]), self.head_markers,
                          self.tail_markers, w) for (t, h, tl), w in zip(instances, wheres)]
        texts = [m[0] for m in marked]
        if not self.frozen:
            return self._encode(texts, [m[1:] for m in marked], wheres)
        # longest first within sorted batches: little padding, and a too-long text fails at once
        todo = sorted((t for t in dict.fromkeys(texts) if t not in self._cache), key=len, reverse=True)
        if todo:
            first = {t: i for i, t in reversed(list(enumerate(texts)))}
            batch = int(getattr(self.encoder, "batch_size", 64))
            with torch.no_grad():
                for s in range(0, len(todo), batch):
                    chunk = todo[s: s + batch]
                    idx = [first[t] for t in chunk]
                    feats = self._encode(chunk, [marked[i][1:] for i in idx], [wheres[i] for i in idx]).cpu()
                    for t, f in zip(chunk, feats):
                        self._cache[t] = f
        return torch.stack([self._cache[t] for t in texts]).to(self.encoder.device)
