"""The WordNet 3.0 database, read from its own files: finding them (:func:`find_wordnet`), parsing them into
:class:`Synset` records (:func:`read_wordnet`), and whole-word phrase matching over lemmas (:class:`PhraseMatcher`,
:func:`find_leaks`). No NLTK needed.

Every WordNet benchmark reads it (text: :mod:`datamodules.text.wordnet`, relations:
:mod:`datamodules.relations.wordnet_rel`, qa: :mod:`datamodules.qa.wordnet_qa`), and :mod:`zoo.nn.retrieval` uses its
tokeniser (:func:`words`); it sits at the top of ``datamodules`` because no one modality owns it.

**The files.** WordNet 3.0 database files (``data.noun``, ``index.noun``, ...): Debian's ``wordnet-base``
(``/usr/share/wordnet``) or an NLTK ``wordnet`` corpus directory or ``wordnet.zip``.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant",
    "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
    "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
]
INSTALL_HINT = ("Install WordNet 3.0: `apt-get install wordnet-base` (Debian/Ubuntu; files in /usr/share/wordnet), "
                "or `python -m nltk.downloader wordnet` (files in ~/nltk_data/corpora/wordnet), then pass the "
                "directory as data.root or set WORDNET_DIR.")


class WordNetNotFound(FileNotFoundError):
    """No WordNet 3.0 database files where we looked; the message says how to install them."""


# -- locating and reading the database --------------------------------------------------------------------------

def _candidates() -> list[Path]:
    out = []
    if os.environ.get("WORDNET_DIR"):
        out.append(Path(os.environ["WORDNET_DIR"]))
    out.append(Path("/usr/share/wordnet"))
    nltk_roots = [Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    nltk_roots += [Path.home() / "nltk_data", Path("/usr/share/nltk_data"), Path("/usr/local/share/nltk_data"),
                   Path("/usr/lib/nltk_data"), Path("/usr/local/lib/nltk_data")]
    for root in nltk_roots:
        out += [root / "corpora" / "wordnet", root / "corpora" / "wordnet.zip"]
    return out


class WordNetFiles:
    """Read access to the database files in a directory or an NLTK ``wordnet.zip``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self._zip_prefix: str | None = None
        if self.path.is_file() and zipfile.is_zipfile(self.path):
            with zipfile.ZipFile(self.path) as z:
                names = z.namelist()
            hits = [n for n in names if n.endswith("data.noun")]
            if not hits:
                raise WordNetNotFound(f"{self.path}: zip archive holds no data.noun. {INSTALL_HINT}")
            self._zip_prefix = hits[0][: -len("data.noun")]
        elif not (self.path / "data.noun").is_file():
            raise WordNetNotFound(f"{self.path}: no WordNet database files (data.noun) there. {INSTALL_HINT}")

    def name(self, file: str) -> str:
        return f"{self.path}:{self._zip_prefix}{file}" if self._zip_prefix is not None else str(self.path / file)

    def read_bytes(self, file: str) -> bytes:
        if self._zip_prefix is not None:
            with zipfile.ZipFile(self.path) as z:
                return z.read(self._zip_prefix + file)
        return (self.path / file).read_bytes()

    def fingerprint(self) -> dict[str, str]:
        """sha256 of every file the build reads: a changed database rebuilds the cache."""
        files = [f"{kind}.{POS_FILES[p]}" for kind in ("data", "index") for p in POS_FILES]
        return {f: hashlib.sha256(self.read_bytes(f)).hexdigest() for f in files}


def find_wordnet(path: str | os.PathLike | None = None) -> WordNetFiles:
    """The WordNet database at ``path``, or the first found among ``$WORDNET_DIR``, ``/usr/share/wordnet`` and
    the NLTK data directories; :class:`WordNetNotFound` (with install instructions) if there is none."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            raise WordNetNotFound(f"WordNet directory {p} does not exist. {INSTALL_HINT}")
        return WordNetFiles(p)
    for cand in _candidates():
        if (cand.is_dir() and (cand / "data.noun").is_file()) or (cand.is_file() and cand.suffix == ".zip"):
            return WordNetFiles(cand)
    looked = ", ".join(str(c) for c in _candidates()[:4])
    raise WordNetNotFound(f"WordNet 3.0 database files not found (looked in {looked}, ...). {INSTALL_HINT}")


@dataclass(frozen=True)
class Synset:
    """One synset: ``key`` is ``"<8-digit offset>-<pos>"`` (satellite adjectives count as ``a``)."""

    key: str
    pos: str
    lexname: str
    lemmas: tuple[str, ...]
    pointers: tuple[tuple[str, str], ...]  # (pointer symbol, target key)
    definition: str
    examples: tuple[str, ...]

    @property
    def gloss(self) -> str:
        return self.definition + "".join(f'; "{e}"' for e in self.examples)


_POINTER_POS = {"n", "v", "a", "s", "r"}
_POS_SUFFIX = {"n": "-n", "v": "-v", "a": "-a", "s": "-a", "r": "-r"}
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")
_QUOTED = re.compile(r'"([^"]*)"')


def _split_gloss(gloss: str) -> tuple[str, tuple[str, ...]]:
    """``definition; "example"; "example"`` -> (definition, examples)."""
    q = gloss.find('"')
    if q < 0:
        return gloss.strip().rstrip(";").strip(), ()
    return gloss[:q].strip().rstrip(";").strip(), tuple(e.strip() for e in _QUOTED.findall(gloss[q:]) if e.strip())


def parse_data_file(text: str, pos: str, where: str) -> dict[str, Synset]:
    """Parse one ``data.<pos>`` file (format of wndb(5)); errors name the file and line."""
    out: dict[str, Synset] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("  "):  # licence header lines start with two spaces
            continue
        head, sep, gloss = line.partition(" | ")
        f = head.split()
        try:
            offset, lexnum = f[0], int(f[1])
            n_words = int(f[3], 16)
            lemmas = tuple(_ADJ_MARKER.sub("", f[4 + 2 * i]) for i in range(n_words))
            i = 4 + 2 * n_words
            n_ptrs = int(f[i])
            end = i + 1 + 4 * n_ptrs
            if len(f) < end:
                raise ValueError(f"{n_ptrs} pointers announced, fewer present")
            targets, tposes = f[i + 2:end:4], f[i + 3:end:4]
            if not all(len(t) == 8 and t.isdigit() for t in targets) or not set(tposes) <= _POINTER_POS:
                raise ValueError("a pointer is malformed")
            ptrs = list(zip(f[i + 1:end:4], (t + _POS_SUFFIX[p] for t, p in zip(targets, tposes))))
            if len(offset) != 8 or not offset.isdigit() or not 0 <= lexnum < len(LEXNAMES) or n_words < 1:
                raise ValueError("bad offset, lexicographer file number or word count")
        except (IndexError, ValueError) as err:
            raise ValueError(f"{where}:{lineno}: not a WordNet synset line ({err})") from None
        if not sep:
            raise ValueError(f"{where}:{lineno}: no ' | ' before the gloss")
        definition, examples = _split_gloss(gloss)
        key = f"{offset}-{pos}"
        out[key] = Synset(key, pos, LEXNAMES[lexnum], lemmas, tuple(ptrs), definition, examples)
    if not out:
        raise ValueError(f"{where}: no synsets (empty or not a WordNet data file)")
    return out


def parse_index_names(text: str, pos: str, where: str) -> dict[str, str]:
    """NLTK-style names from ``index.<pos>``: synset key -> ``"<first lemma>.<pos>.<sense number>"``.

    A synset's name uses its first lemma and that lemma's sense rank; this maps every (lemma, rank) pair, and the
    caller keeps the one whose lemma is the synset's first.
    """
    names: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("  "):
            continue
        f = line.split()
        try:
            lemma, n_syn, n_ptr = f[0], int(f[2]), int(f[3])
            offsets = f[6 + n_ptr: 6 + n_ptr + n_syn]
            if len(offsets) != n_syn:
                raise ValueError("fewer offsets than the synset count")
        except (IndexError, ValueError) as err:
            raise ValueError(f"{where}:{lineno}: not a WordNet index line ({err})") from None
        for rank, off in enumerate(offsets, 1):
            names[f"{lemma}|{off}-{pos}"] = f"{lemma}.{pos}.{rank:02d}"
    return names


@dataclass
class WordNet:
    """The parsed database: synsets by key, and NLTK-style names (``dog.n.01``) both ways."""

    synsets: dict[str, Synset]
    names: dict[str, str]  # key -> name (first lemma's sense)
    keys: dict[str, str]  # name -> key, for the names of every lemma sense

    def key(self, name: str) -> str:
        if name not in self.keys and ".s." in name:  # NLTK writes satellite adjectives as lemma.s.NN
            name = name.replace(".s.", ".a.")
        if name not in self.keys:
            raise KeyError(f"no WordNet synset named {name!r} (expected a name such as 'dog.n.01')")
        return self.keys[name]


def read_wordnet(files: WordNetFiles) -> WordNet:
    """Parse every ``data.*`` and ``index.*`` file; check that every pointer lands on a synset."""
    synsets: dict[str, Synset] = {}
    pairs: dict[str, str] = {}
    for pos, fname in POS_FILES.items():
        data = files.read_bytes(f"data.{fname}").decode("utf-8", errors="strict")
        synsets.update(parse_data_file(data, pos, files.name(f"data.{fname}")))
        index = files.read_bytes(f"index.{fname}").decode("utf-8", errors="strict")
        pairs.update(parse_index_names(index, pos, files.name(f"index.{fname}")))
    names: dict[str, str] = {}
    for key, s in synsets.items():
        name = pairs.get(f"{s.lemmas[0].lower()}|{key}")
        names[key] = name or f"{s.lemmas[0].lower()}.{s.pos}.{key[:8]}"  # no index entry: fall back to offset
    for key, s in synsets.items():
        for sym, target in s.pointers:
            if target not in synsets:
                raise ValueError(f"{files.name('data.' + POS_FILES[s.pos])}: synset {key} points ({sym}) to "
                                 f"{target}, which is in no data file (truncated or mixed WordNet versions?)")
    keys = {v: k for k, v in names.items()}
    # NLTK also resolves "<any lemma>.<pos>.<rank>" (toy.n.01 is the synset named plaything.n.01): so do we
    for pair, name in pairs.items():
        keys.setdefault(name, pair.split("|", 1)[1])
    return WordNet(synsets, names, keys)


# -- phrase matching (the leak check) ---------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> tuple[str, ...]:
    """Lower-cased alphanumeric tokens: the unit in which containment is judged (case and punctuation ignored)."""
    return tuple(_WORD.findall(text.lower()))


def plural_forms(term: str) -> list[str]:
    """``term`` and the regular plurals of its last word (s, es, y->ies)."""
    out = [term]
    if term.endswith("y") and len(term) > 1 and term[-2] not in "aeiou":
        out.append(term[:-1] + "ies")
    out += [term + "s", term + "es"]
    return out


class PhraseMatcher:
    """Finds whether a text contains any of many phrases as a contiguous run of whole words.

    Phrases are indexed by their first two words (single words separately), so a text of T words costs about
    T dictionary look-ups plus the few lengths that share a prefix, instead of a pass per phrase.
    """

    def __init__(self, phrases: Iterable[str]):
        self.single: set[str] = set()
        self.multi: dict[tuple[str, str], dict[int, set[tuple[str, ...]]]] = {}
        for p in phrases:
            w = words(p)
            if len(w) == 1:
                self.single.add(w[0])
            elif len(w) > 1:
                self.multi.setdefault(w[:2], {}).setdefault(len(w), set()).add(w)

    def find(self, text: str) -> str | None:
        """The first phrase found in ``text`` (as space-joined words), or None."""
        w = words(text)
        for i, tok in enumerate(w):
            if tok in self.single:
                return tok
            if i + 1 < len(w):
                lengths = self.multi.get((tok, w[i + 1]))
                if lengths:
                    for n, group in lengths.items():
                        if w[i: i + n] in group:
                            return " ".join(w[i: i + n])
        return None


def find_leaks(passages: Sequence[str], texts: Iterable[str], label_terms: Iterable[str]) -> list[tuple[int, str]]:
    """(passage index, offending phrase) for every passage containing an example text or a label term.

    Label terms match with their regular plurals; example texts match as they are. Both match as whole words,
    case and punctuation ignored.
    """
    matcher = PhraseMatcher(list(texts) + [f for t in label_terms for f in plural_forms(t)])
    return [(i, hit) for i, p in enumerate(passages) if (hit := matcher.find(p)) is not None]
