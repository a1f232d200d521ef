"""The multiple-choice commonsense files users download: a reader per format, each to a list of :class:`MCItem`,
and :class:`FileQADataModule`, which makes tasks of them.

Formats (as the datasets' own releases ship them):

* ``commonsenseqa``: JSON lines ``{"id", "question": {"stem", "choices": [{"label", "text"}]}, "answerKey"}``.
* ``socialiqa``: JSON lines ``{"context", "question", "answerA", "answerB", "answerC"}`` plus a labels file of
  one 1-based answer per line (``train-labels.lst``).
* ``piqa``: JSON lines ``{"goal", "sol1", "sol2"}`` plus a labels file of one 0-based answer per line.
* ``copa``: the original XML (``<item most-plausible-alternative="1" asks-for="cause"><p/><a1/><a2/></item>``)
  or SuperGLUE JSON lines ``{"premise", "choice1", "choice2", "question", "label"}``.
* ``winogrande``: JSON lines ``{"qID", "sentence" (with one "_"), "option1", "option2", "answer": "1"|"2"}``.
* ``hellaswag``: JSON lines ``{"ind", "ctx", "endings": [4 strings], "label"}``.
* ``cosmosqa``: CSV or JSON lines with ``id, context, question, answer0..answer3, label``.

Every malformed record is an error naming the file, the line and the field (or the answer that is not among the
choices); nothing is skipped silently. Unlabelled test files are not readable here: the benchmarks score items.
"""

from __future__ import annotations

import csv
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from datamodules.files import json_lines
from datamodules.files import require_file as _require_file
from datamodules.qa.base import MultipleChoiceDataModule
from datamodules.qa.items import MCItem, MCTask, make_item


def _json_lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, row in json_lines(path):
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
        yield where, row


def _field(row: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    if key not in row:
        raise ValueError(f"{where}: field {key!r} is missing")
    value = row[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ValueError(f"{where}: field {key!r} should be {names}, got {value!r}")
    return value


def _int_label(value: Any, where: str, key: str, base: int = 0) -> int:
    try:
        return int(str(value).strip()) - base
    except ValueError:
        raise ValueError(f"{where}: field {key!r} should be an integer answer, got {value!r}") from None


def _labels(path: str | os.PathLike | None, n_items: int, data: Path, base: int) -> list[tuple[str, int]]:
    if path is None:
        raise ValueError(f"{data}: this format keeps its answers in a separate labels file; pass labels=<path>")
    p = _require_file(path, "labels file")
    lines = [(f"{p}:{i}", line.strip()) for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if line.strip()]
    if len(lines) != n_items:
        raise ValueError(f"{p}: {len(lines)} labels for the {n_items} records of {data}")
    return [(w, _int_label(v, w, "label", base)) for w, v in lines]


def read_commonsenseqa(path: str | os.PathLike, labels: str | None = None) -> list[MCItem]:
    p = _require_file(path, "CommonsenseQA file")
    out = []
    for where, row in _json_lines(p):
        q = _field(row, "question", where, dict)
        stem = _field(q, "stem", f"{where} question")
        choices = _field(q, "choices", f"{where} question", list)
        labels_ = [_field(c, "label", f"{where} choice {i}") for i, c in enumerate(choices)]
        texts = [_field(c, "text", f"{where} choice {i}") for i, c in enumerate(choices)]
        key = _field(row, "answerKey", where)
        if key not in labels_:
            raise ValueError(f"{where}: answerKey {key!r} is not among the choice labels {labels_}")
        out.append(make_item("", stem, texts, labels_.index(key), where, str(row.get("id", where))))
    return out


def read_socialiqa(path: str | os.PathLike, labels: str | None = None) -> list[MCItem]:
    p = _require_file(path, "SocialIQA file")
    rows = list(_json_lines(p))
    out = []
    for (where, row), (lwhere, answer) in zip(rows, _labels(labels, len(rows), p, base=1)):
        choices = [_field(row, k, where) for k in ("answerA", "answerB", "answerC")]
        out.append(make_item(_field(row, "context", where), _field(row, "question", where), choices, answer,
                             f"{where} (label {lwhere})", where))
    return out


def read_piqa(path: str | os.PathLike, labels: str | None = None) -> list[MCItem]:
    p = _require_file(path, "PIQA file")
    rows = list(_json_lines(p))
    out = []
    for (where, row), (lwhere, answer) in zip(rows, _labels(labels, len(rows), p, base=0)):
        out.append(make_item("", _field(row, "goal", where), [_field(row, "sol1", where), _field(row, "sol2", where)],
                             answer, f"{where} (label {lwhere})", str(row.get("id", where))))
    return out


_COPA_QUESTION = {"cause": "What was the cause?", "effect": "What happened as a result?"}


def _copa_item(premise: str, asks: str, choices: list[str], answer: int, where: str, id: str) -> MCItem:
    if asks not in _COPA_QUESTION:
        raise ValueError(f"{where}: question {asks!r} should be 'cause' or 'effect'")
    return make_item(premise, _COPA_QUESTION[asks], choices, answer, where, id)


def read_copa(path: str | os.PathLike, labels: str | None = None) -> list[MCItem]:
    p = _require_file(path, "COPA file")
    if p.suffix.lower() != ".xml":
        return [_copa_item(_field(r, "premise", w), _field(r, "question", w),
                           [_field(r, "choice1", w), _field(r, "choice2", w)], _int_label(_field(r, "label", w, int),
                                                                                          w, "label"), w,
                           str(r.get("idx", w)))
                for w, r in _json_lines(p)]
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{p}:{err.position[0]}: not valid XML ({err})") from None
    out = []
    for el in root.iter("item"):
        where = f"{p} item id={el.get('id')!r}"
        texts = {}
        for tag in ("p", "a1", "a2"):
            child = el.find(tag)
            if child is None or not (child.text or "").strip():
                raise ValueError(f"{where}: element <{tag}> is missing or empty")
            texts[tag] = child.text.strip()
        label = el.get("most-plausible-alternative")
        out.append(_copa_item(texts["p"], el.get("asks-for", ""), [texts["a1"], texts["a2"]],
                              _int_label(label, where, "most-plausible-alternative", base=1), where,
                              str(el.get("id"))))
    if not out:
        raise ValueError(f"{p}: no <item> elements (expected COPA's XML)")
    return out


def read_winogrande(path: str | os.PathLike, labels: str | None = None) -> list[MCItem]:
    p = _require_file(path, "WinoGrande file")
    out = []
    for where, row in _json_lines(p):
        sentence = _field(row, "sentence", where)
        if sentence.count("_") != 1:
            raise ValueError(f"{where}: field 'sentence' should hold exactly one '_' blank")
        answer = _int_label(_field(row, "answer", where, (str, int)), where, "answer", base=1)
        out.append(make_item(sentence, "Which option fills the blank?",
                             [_field(row, "option1", where), _field(row, "option2", where)], answer, where,
                             str(row.get("qID", where))))
    return out


def read_hellaswag(path: str | os.PathLike, labels: str | None = None) -> list[MCItem]:
    p = _require_file(path, "HellaSwag file")
    out = []
    for where, row in _json_lines(p):
        endings = _field(row, "endings", where, list)
        out.append(make_item(_field(row, "ctx", where), "What happens next?", endings,
                             _int_label(_field(row, "label", where, (int, str)), where, "label"), where,
                             str(row.get("ind", where))))
    return out


def read_cosmosqa(path: str | os.PathLike, labels: str | None = None) -> list[MCItem]:
    p = _require_file(path, "CosmosQA file")
    if p.suffix.lower() == ".csv":
        with open(p, encoding="utf-8", newline="") as f:
            # line numbers of the records: header is line 1 (fields with newlines would shift them; CosmosQA has none)
            rows = [(f"{p}:{i}", r) for i, r in enumerate(csv.DictReader(f), 2)]
    else:
        rows = list(_json_lines(p))
    out = []
    for where, row in rows:
        choices = [_field(row, f"answer{i}", where) for i in range(4)]
        label = _field(row, "label", where, (int, str))
        out.append(make_item(_field(row, "context", where), _field(row, "question", where), choices,
                             _int_label(label, where, "label"), where, str(row.get("id", where))))
    return out


READERS: dict[str, Callable[..., list[MCItem]]] = {
    "commonsenseqa": read_commonsenseqa, "socialiqa": read_socialiqa, "piqa": read_piqa, "copa": read_copa,
    "winogrande": read_winogrande, "hellaswag": read_hellaswag, "cosmosqa": read_cosmosqa,
}


def read_items(format: str, path: str | os.PathLike, labels: str | None = None) -> list[MCItem]:
    """Items of one file in one of :data:`READERS`' formats (``labels``: SocialIQA's and PIQA's labels file)."""
    if format not in READERS:
        raise ValueError(f"unknown multiple-choice format {format!r}; expected one of {sorted(READERS)}")
    return READERS[format](path, labels)


class FileQADataModule(MultipleChoiceDataModule):
    """Tasks from the users' files, e.g. CommonsenseQA, SocialIQA, PIQA, COPA, WinoGrande, HellaSwag, CosmosQA.

    Args:
        files: ``{task name: {"format": <a reader of :data:`READERS`>, "train": path, "dev": path,
            "test": path (optional: a held-out part of dev is taken otherwise), "train_labels"/"dev_labels"/
            "test_labels": labels files (SocialIQA, PIQA)}}``. Relative paths are under ``root``.
        root: directory the relative paths are resolved against.

    Other arguments: :class:`MultipleChoiceDataModule`. The public test sets of these datasets are unlabelled, so
    by default a task's ``dev`` file is split: its first half is the dev set, the second the test set ([INTERP],
    the usual protocol of low-resource commonsense papers).
    """

    def __init__(self, files: dict[str, dict[str, str]], target: str, root: str = ".", **kwargs: Any):
        super().__init__(target, **kwargs)
        self.files, self.root = files, root

    def load_tasks(self) -> dict[str, MCTask]:
        tasks = {}
        for name, spec in self.files.items():
            if not isinstance(spec, dict) or "format" not in spec or "train" not in spec or "dev" not in spec:
                raise ValueError(f"{type(self).__name__}: files[{name!r}] needs 'format', 'train' and 'dev' entries, "
                                 f"got {spec!r}")

            def read(split: str) -> list[MCItem]:
                labels = spec.get(f"{split}_labels")
                return read_items(spec["format"], Path(self.root) / spec[split],
                                  None if labels is None else str(Path(self.root) / labels))

            train, dev = read("train"), read("dev")
            if "test" in spec:
                test = read("test")
            else:
                half = len(dev) // 2
                dev, test = dev[:half], dev[half:]
            tasks[name] = MCTask(name, train, dev, test)
        return tasks
