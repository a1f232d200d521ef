"""FewRel 1.0 and 2.0 files as NOTA relation episodes (the user's FewRel directory; nothing is downloaded).

Read through :func:`datamodules.text.readers.read_fewrel_json` (its errors name the file and the first bad relation
and instance) with :class:`datamodules.text.FewRelDataModule`'s splits: ``train_wiki.json`` (64 relations),
``val_wiki.json`` (16) and a test file. FewRel 1.0's test set is hidden, so give a re-split file (as D-Proto's
``test_wiki.json``), or FewRel 2.0's ``val_pubmed.json`` (10 biomedical relations) for a cross-domain test: its
format is FewRel 1.0's. Splits must be relation-disjoint.

GPAM's debiased views replace an entity by a type string: FewRel gives each entity a Wikidata id, and its type
("instance of" label) must come from the user's disk, as ``qid_types`` (a JSON object ``{"Q42": "human", ...}``);
entities it does not list, or every entity without it, get ``generic_type``. The context-debiased view needs WordNet
(``wordnet_root``, found automatically) unless ``synonym_rate`` is 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datamodules.episodes import Source
from datamodules.relations.base import RelationDataModule
from datamodules.relations.views import SynonymTable, context_debiased
from datamodules.text.readers import FewRelDataModule, TextSource
from datamodules.text.wordnet import find_wordnet, read_wordnet


def read_qid_types(path: str | Path) -> dict[str, str]:
    """A QID-to-type file: a JSON object mapping Wikidata ids to type strings; errors name the file and entry."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"QID-to-type file {p} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected an object mapping Wikidata ids to type strings")
    for qid, t in data.items():
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"{p}: entry {qid!r} must map to a non-empty string, got {t!r}")
    return data


class FewRelNOTA(RelationDataModule, FewRelDataModule):
    """FewRel relation episodes with NOTA queries (D-Proto protocol by default).

    Args:
        root: the directory holding the FewRel files.
        train_file / val_file / test_file: relation files (``test_file``: a FewRel 1.0 re-split or FewRel 2.0's
            ``val_pubmed.json``; None tests on ``val_file``'s relations, with a warning).
        pid2name: optional ``pid2name.json`` for readable relation names.
        qid_types: optional JSON ``{wikidata id: type string}`` for the head/tail-debiased views.
        generic_type: the type string of entities without one.
        wordnet_root: WordNet for the synonyms of the context-debiased view (None: found automatically).
        synonym_rate: share of context words replaced by a synonym (0: no WordNet needed).
        **kwargs: NOTA rates and the episode setting, see :class:`datamodules.relations.RelationDataModule`.
    """

    def __init__(self, root: str, train_file: str = "train_wiki.json", val_file: str = "val_wiki.json",
                 test_file: str | None = "test_wiki.json", pid2name: str | None = None, qid_types: str | None = None,
                 generic_type: str = "entity", wordnet_root: str | None = None, synonym_rate: float = 0.15,
                 **kwargs: Any):
        super().__init__(root=root, train_file=train_file, val_file=val_file, test_file=test_file,
                         pid2name=pid2name, **kwargs)
        if not 0 <= synonym_rate <= 1:
            raise ValueError(f"FewRelNOTA synonym_rate must be in [0, 1], got {synonym_rate}")
        self.qid_types, self.generic_type = qid_types, generic_type
        self.wordnet_root, self.synonym_rate = wordnet_root, synonym_rate

    @property
    def name(self) -> str:
        return "FewRel-NOTA"

    def build_sources(self) -> dict[str, Source]:
        sources = FewRelDataModule.build_sources(self)
        types = read_qid_types(Path(self.root).expanduser() / self.qid_types) if self.qid_types else {}
        table = SynonymTable(read_wordnet(find_wordnet(self.wordnet_root))) if self.synonym_rate > 0 else None
        done: dict[int, TextSource] = {}
        for split, src in sources.items():
            if id(src) in done:  # the test split may be the validation source itself
                sources[split] = done[id(src)]
                continue
            f = src.fields
            f["head_type"] = [types.get(q, self.generic_type) for q in f["head_id"]]
            f["tail_type"] = [types.get(q, self.generic_type) for q in f["tail_id"]]
            if table is None:
                f["context_tokens"] = [list(t) for t in f["tokens"]]
            else:
                f["context_tokens"] = [context_debiased(t, h.tolist(), tl.tolist(), self.synonym_rate,
                                                        f"{i}/{' '.join(t)}", table)
                                       for i, (t, h, tl) in enumerate(zip(f["tokens"], f["head"], f["tail"]))]
            done[id(src)] = src
        return sources
