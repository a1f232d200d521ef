"""Dense passage retrieval with FAISS: build an index, persist it with its metadata, reload it, search it.

RAML retrieves with a frozen sentence encoder over a fixed corpus, offline from the reader (the official code
embeds DPR's Wikipedia with Sentence-BERT into ``faiss.index_factory(768, 'HNSW64', METRIC_INNER_PRODUCT)``).
Here the same pieces are small and explicit:

* **Index kinds.** ``flat`` (exact inner product, for corpora up to a few hundred thousand passages), ``hnsw``
  (graph search; knobs ``hnsw_m``, ``ef_construction``, ``ef_search``) and ``ivf`` (inverted lists over k-means
  cells; knobs ``ivf_nlist``, ``ivf_nprobe``).
* **Cosine** similarity is inner product on L2-normalised float32 C-contiguous vectors (FAISS copies, or
  silently misreads, anything else).
* **Persistence.** ``index.faiss`` plus ``meta.json`` (encoder fingerprint, corpus checksum, size, dimension,
  metric, index kind and knobs, FAISS version), each written to a temporary file and renamed, metadata last.
  Loading compares the metadata with what the caller expects; any difference raises :class:`StaleIndexError`,
  and :class:`Retriever` rebuilds. Given an ``index_root`` instead of an ``index_dir``, a retriever keeps its
  index in ``<index_root>/<corpus>-<kind>-<key>``, the key a hash of what the index is built from (corpus checksum,
  encoder fingerprint, dimension, metric, kind and build knobs: :func:`index_key`), so two settings (say, two
  WordNet builds whose leak filters keep different passages) each keep their own index instead of rebuilding over
  each other.
* **Progress.** Embedding a corpus and building an approximate index report items done, rate and time left on
  stderr (:class:`datamodules.progress.Progress`); a first run that embeds 36k passages is never silent.
* **Threads** are set explicitly: FAISS's OpenMP pool gets ``cpus // world_size`` threads, so DDP ranks sharing a
  machine do not oversubscribe it.
* **No search in data-loader workers.** FAISS's OpenMP state does not survive ``fork`` reliably and every worker
  would hold its own index copy; :meth:`Retriever.retrieve` refuses to run inside a worker. Retrieval happens in
  the LightningModule, in the main process, and is cached per query text.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safefiles import atomic_path, atomic_write_text
from datamodules.progress import Progress
from datamodules.text import PassageCorpus
from datamodules.wordnet import words

INDEX_KINDS = ("flat", "hnsw", "ivf")
METRICS = ("cosine", "ip")
META_VERSION = 1


class StaleIndexError(RuntimeError):
    """A persisted index does not match the encoder, corpus or index settings it is asked to serve."""


def _faiss() -> Any:
    import faiss  # imported lazily: only retrieval needs it

    return faiss


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_faiss_threads(world_size: int = 1, threads: int | None = None) -> int:
    """Give FAISS ``threads`` OpenMP threads, by default ``max(1, cpus // world_size)``; returns the number."""
    n = threads if threads is not None else max(1, available_cpus() // max(1, world_size))
    _faiss().omp_set_num_threads(int(n))
    return int(n)


@dataclass
class IndexSpec:
    """How to index: kind, metric and the knobs of the approximate kinds.

    Args:
        kind: ``flat`` | ``hnsw`` | ``ivf``.
        metric: ``cosine`` (normalise, then inner product) or ``ip`` (raw inner product).
        hnsw_m: neighbours per HNSW node (RAML: 64); memory and recall grow with it.
        ef_construction: HNSW candidate list while building.
        ef_search: HNSW candidate list while searching (recall/speed knob; must be >= k).
        ivf_nlist: IVF cells; None = ``4 * sqrt(n)``, capped so every cell has >= 39 training points.
        ivf_nprobe: cells visited per query.
    """

    kind: str = "flat"
    metric: str = "cosine"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    ivf_nlist: int | None = None
    ivf_nprobe: int = 16

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be one of {INDEX_KINDS}, got {self.kind!r}")
        if self.metric not in METRICS:
            raise ValueError(f"index metric must be one of {METRICS}, got {self.metric!r}")
        for name in ("hnsw_m", "ef_construction", "ef_search", "ivf_nprobe"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"IndexSpec.{name} must be >= 1, got {getattr(self, name)}")

    def build_knobs(self) -> dict[str, Any]:
        """The settings that change what is stored (search-time knobs are not part of an index's identity)."""
        if self.kind == "hnsw":
            return {"hnsw_m": self.hnsw_m, "ef_construction": self.ef_construction}
        if self.kind == "ivf":
            return {"ivf_nlist": self.ivf_nlist}
        return {}


def as_search_array(x: torch.Tensor | np.ndarray, metric: str) -> np.ndarray:
    """float32, C-contiguous, 2-d; L2-normalised rows for cosine. (FAISS requires exactly this layout.)"""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(a, axis=1, keepdims=True)
        a = np.ascontiguousarray(a / np.maximum(norms, 1e-12), dtype=np.float32)
    return a


def default_nlist(n: int) -> int:
    """``4 sqrt(n)`` cells, at most ``n // 39`` (FAISS wants >= 39 training points per centroid), at least 1."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


ADD_CHUNK = 4096  # vectors per FAISS add call: fine enough for progress lines, coarse enough to cost nothing


def build_index(vectors: torch.Tensor | np.ndarray, spec: IndexSpec, progress: str | None = None) -> Any:
    """A FAISS index over ``vectors`` ([n, d]) as ``spec`` says; inner product on the prepared vectors.

    ``progress``: describe the build on stderr (HNSW graphs over tens of thousands of vectors take a while); the
    vectors are added in chunks of ``ADD_CHUNK``, which gives the same index as one call (FAISS adds sequentially).
    """
    faiss = _faiss()
    x = as_search_array(vectors, spec.metric)
    n, d = x.shape
    if n == 0:
        raise ValueError("cannot index an empty set of vectors")
    if spec.kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif spec.kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = spec.ef_construction
    else:
        nlist = spec.ivf_nlist or default_nlist(n)
        if nlist > n:
            raise ValueError(f"ivf_nlist={nlist} exceeds the {n} vectors to index")
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(x)  # k-means with FAISS's fixed default seed: the same vectors give the same cells
    with Progress(progress or "indexing", n, "vectors", enabled=None if progress else False) as bar:
        for s in range(0, n, ADD_CHUNK):
            index.add(x[s: s + ADD_CHUNK])
            bar.update(len(x[s: s + ADD_CHUNK]))
    return index


def configure_search(index: Any, spec: IndexSpec, k: int) -> None:
    """Set the search-time knobs (HNSW ``efSearch`` >= k, IVF ``nprobe``)."""
    faiss = _faiss()
    if spec.kind == "hnsw":
        faiss.downcast_index(index).hnsw.efSearch = max(spec.ef_search, k)
    elif spec.kind == "ivf":
        faiss.extract_index_ivf(index).nprobe = spec.ivf_nprobe


def search(index: Any, queries: torch.Tensor | np.ndarray, k: int, spec: IndexSpec) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, ids), each ``[n_queries, k]``, best first; ids are -1 where fewer than k exist."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    q = as_search_array(queries, spec.metric)
    if q.shape[1] != index.d:
        raise ValueError(f"queries have dimension {q.shape[1]}, the index {index.d}")
    configure_search(index, spec, k)
    return index.search(q, k)


class PassageIndex:
    """A FAISS index together with the metadata that says what it indexes."""

    def __init__(self, index: Any, meta: dict[str, Any], spec: IndexSpec):
        self.index, self.meta, self.spec = index, meta, spec

    @staticmethod
    def expected_meta(encoder_fingerprint: str, corpus: PassageCorpus, dim: int, spec: IndexSpec) -> dict[str, Any]:
        return {"version": META_VERSION, "encoder": encoder_fingerprint, "corpus": corpus.name,
                "corpus_checksum": corpus.checksum, "size": len(corpus), "dim": int(dim), "metric": spec.metric,
                "kind": spec.kind, "knobs": spec.build_knobs()}

    @classmethod
    def build(cls, vectors: torch.Tensor | np.ndarray, spec: IndexSpec, meta: dict[str, Any],
              progress: str | None = None) -> PassageIndex:
        if len(vectors) != meta["size"]:
            raise ValueError(f"{len(vectors)} vectors for a corpus of {meta['size']} passages")
        return cls(build_index(vectors, spec, progress), dict(meta), spec)

    def save(self, directory: str | os.PathLike) -> None:
        """Write ``index.faiss`` then ``meta.json``, each through a temporary file and a rename."""
        faiss = _faiss()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        with atomic_path(d / "index.faiss") as tmp:
            faiss.write_index(self.index, str(tmp))
        meta = {**self.meta, "faiss_version": faiss.__version__, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_text(d / "meta.json", json.dumps(meta, indent=1))

    @classmethod
    def load(cls, directory: str | os.PathLike, expected: dict[str, Any], spec: IndexSpec) -> PassageIndex:
        """Load and check against ``expected`` metadata; :class:`StaleIndexError` names the first difference."""
        d = Path(directory)
        if not (d / "meta.json").is_file() or not (d / "index.faiss").is_file():
            raise StaleIndexError(f"{d}: no persisted index (index.faiss + meta.json)")
        try:
            meta = json.loads((d / "meta.json").read_text())
        except ValueError as err:
            raise StaleIndexError(f"{d}/meta.json is unreadable ({err})") from None
        for key, want in expected.items():
            if key == "corpus":  # a display name: the same passages read from a file take the file's name, and
                continue  # the checksum already identifies the content
            if meta.get(key) != want:
                raise StaleIndexError(f"{d}: index {key} is {meta.get(key)!r}, expected {want!r}")
        index = _faiss().read_index(str(d / "index.faiss"))
        if index.ntotal != expected["size"] or index.d != expected["dim"]:
            raise StaleIndexError(f"{d}: index holds {index.ntotal} vectors of dimension {index.d}, metadata says "
                                  f"{expected['size']} x {expected['dim']}")
        return cls(index, meta, spec)

    def search(self, queries: torch.Tensor | np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return search(self.index, queries, k, self.spec)


# what an index is built from; "corpus" (a display name) and "version" of the metadata format are not its identity
IDENTITY_KEYS = ("encoder", "corpus_checksum", "size", "dim", "metric", "kind", "knobs")


def index_key(meta: dict[str, Any]) -> str:
    """16 hex digits identifying an index by what it is built from (:data:`IDENTITY_KEYS` of its metadata)."""
    identity = json.dumps({k: meta[k] for k in IDENTITY_KEYS}, sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def keyed_index_dir(root: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """``<root>/<corpus name>-<kind>-<index_key>``: one directory per distinct index, readable by a person."""
    return Path(root) / f"{safe_name(meta['corpus'])}-{meta['kind']}-{index_key(meta)}"


def safe_name(name: str) -> str:
    """``name`` with anything but letters, digits, ``-``, ``_`` and ``.`` replaced by ``_`` (for directory names)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def brute_force_topk(corpus: torch.Tensor, queries: torch.Tensor, k: int, metric: str = "cosine"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k by a dense matrix product in torch: the reference the ``flat`` index must reproduce."""
    c, q = corpus.float(), queries.float()
    if metric == "cosine":
        c = torch.nn.functional.normalize(c, dim=-1)
        q = torch.nn.functional.normalize(q, dim=-1)
    return torch.topk(q @ c.T, k, dim=1)


_RESULTS: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}


class Retriever:
    """Query texts -> top-k passages of a corpus, through a frozen text encoder and a persisted FAISS index.

    Args:
        encoder: the retrieval encoder (a frozen :class:`zoo.nn.text_encoder.TextEncoder`, or anything with
            ``encode(texts, normalize, progress=None) -> [n, d]`` and ``fingerprint()``).
        corpus: the passages.
        spec: index kind, metric and knobs.
        index_dir: where the index persists (exactly there: a stale index in it is rebuilt over).
        index_root: with no ``index_dir``, the index persists in :func:`keyed_index_dir` under this root, a
            directory per distinct (corpus, encoder, index settings). Neither: the index stays in memory.
        world_size: processes sharing this machine's CPUs (for the thread count).
        threads: FAISS threads; overrides ``cpus // world_size``.
        exclude_query_text: drop a retrieved passage whose words equal the query's (a corpus may hold the very
            text being classified; reading it back is not knowledge).

        share_results: share the per-text result cache with every retriever of this process that serves the same
            index (same encoder fingerprint, corpus checksum and index settings).

    Results are cached per query text (the top ``k`` ids and scores; a larger ``k`` later re-searches).
    """

    def __init__(self, encoder: Any, corpus: PassageCorpus, spec: IndexSpec | None = None,
                 index_dir: str | os.PathLike | None = None, world_size: int = 1, threads: int | None = None,
                 exclude_query_text: bool = True, share_results: bool = True,
                 index_root: str | os.PathLike | None = None):
        self.encoder, self.corpus, self.spec = encoder, corpus, spec or IndexSpec()
        self.index_dir = Path(index_dir) if index_dir is not None else None
        self.index_root = Path(index_root) if index_root is not None else None
        self.world_size, self.threads = world_size, threads
        self.exclude_query_text = exclude_query_text
        self._index: PassageIndex | None = None
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._vectors: dict[int, torch.Tensor] = {}  # passage id -> stored vector (passage_vectors)
        self.share_results = share_results
        self.stats = {"searched": 0, "cache_hits": 0, "search_seconds": 0.0, "encode_seconds": 0.0,
                      "build_seconds": 0.0, "built": False}

    def expected_meta(self) -> dict[str, Any]:
        dim = getattr(self.encoder, "out_dim", None)
        if dim is None:
            dim = int(self.encoder.encode(["probe"], normalize=False).shape[1])
        return PassageIndex.expected_meta(self.encoder.fingerprint(), self.corpus, dim, self.spec)

    @property
    def index(self) -> PassageIndex:
        if self._index is None:
            self.prepare()
        return self._index

    def prepare(self, rebuild: bool = False) -> PassageIndex:
        """Load the persisted index if it matches, else embed the corpus, build and persist it."""
        if self._index is not None and not rebuild:
            return self._index
        set_faiss_threads(self.world_size, self.threads)
        expected = self.expected_meta()
        if self.share_results:  # retrievers over the same index and settings share results in this process
            key = json.dumps({**expected, "exclude_query_text": self.exclude_query_text}, sort_keys=True)
            self._cache = _RESULTS.setdefault(key, {})
        if self.index_dir is None and self.index_root is not None:
            self.index_dir = keyed_index_dir(self.index_root, expected)
        if self.index_dir is not None and not rebuild:
            try:
                self._index = PassageIndex.load(self.index_dir, expected, self.spec)
                return self._index
            except StaleIndexError:
                pass  # missing or stale: rebuild below
        self._vectors = {}
        start = time.perf_counter()
        texts = [self.corpus.passage(i) for i in range(len(self.corpus))]
        where = f" into {self.index_dir}" if self.index_dir is not None else ""
        vectors = self.encoder.encode(texts, normalize=self.spec.metric == "cosine",
                                      progress=f"embedding {len(texts):,} {self.corpus.name} passages{where} "
                                               "(first run only)")
        self._index = PassageIndex.build(vectors, self.spec, expected,
                                         progress=f"building the {self.spec.kind} index")
        self.stats["build_seconds"] = time.perf_counter() - start
        self.stats["built"] = True
        if self.index_dir is not None:
            self._index.save(self.index_dir)
        return self._index

    def retrieve(self, texts: list[str], k: int, vectors: torch.Tensor | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` passage indices and scores for each text, ``[len(texts), k]`` each (cached per text).

        ``vectors`` (``[len(texts), d]``): the texts' embeddings by the retrieval encoder when the caller already
        holds them (a frozen encoder's cached vectors), so a text is not embedded a second time.
        """
        if vectors is not None and len(vectors) != len(texts):
            raise ValueError(f"Retriever.retrieve: {len(vectors)} vectors for {len(texts)} texts")
        if torch.utils.data.get_worker_info() is not None:
            raise RuntimeError("Retriever.retrieve was called inside a DataLoader worker; retrieval runs in the "
                               "main process (the LightningModule), never in forked workers")
        if k > len(self.corpus):
            raise ValueError(f"asked for {k} passages from a corpus of {len(self.corpus)}")
        index = self.index  # loads or builds, and attaches the result cache
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache or len(self._cache[t][0]) < k))
        self.stats["cache_hits"] += len(texts) - len(todo)
        if todo:
            t0 = time.perf_counter()
            if vectors is not None:
                row = {t: i for i, t in enumerate(texts)}
                q = vectors[[row[t] for t in todo]].detach().float().cpu()
            else:
                q = self.encoder.encode(todo, normalize=self.spec.metric == "cosine")
            t1 = time.perf_counter()
            extra = 4 if self.exclude_query_text else 0
            scores, ids = index.search(q, min(k + extra, len(self.corpus)))
            self.stats["encode_seconds"] += t1 - t0
            self.stats["search_seconds"] += time.perf_counter() - t1
            self.stats["searched"] += len(todo)
            for t, s, i in zip(todo, scores, ids):
                keep = i >= 0
                if self.exclude_query_text:
                    tw = words(t)
                    keep &= np.array([j < 0 or words(self.corpus.texts[j]) != tw for j in i])
                s, i = s[keep][:k], i[keep][:k]
                if len(i) < k:  # exclusions ate into k: pad by repeating the last hit (rare, tiny corpora)
                    pad = k - len(i)
                    i = np.concatenate([i, np.repeat(i[-1:], pad)])
                    s = np.concatenate([s, np.repeat(s[-1:], pad)])
                self._cache[t] = (i, s)
        ids = np.stack([self._cache[t][0][:k] for t in texts])
        scores = np.stack([self._cache[t][1][:k] for t in texts])
        return ids, scores

    def passage_vectors(self, ids: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The stored (indexed) vectors of passages ``ids`` (any shape), ``[*ids.shape, d]``, float32 on the CPU.

        These are the retrieval encoder's embeddings of the passages, L2-normalised for the cosine metric; reading
        them back from the index costs no encoder pass (flat and HNSW indexes store them; IVF gets a direct map).
        """
        index = self.index.index
        ids_t = torch.as_tensor(np.asarray(ids), dtype=torch.long)
        flat = ids_t.reshape(-1)
        if self.spec.kind == "ivf":
            _faiss().extract_index_ivf(index).make_direct_map()
        cache = self._vectors
        missing = sorted({int(i) for i in flat.tolist()} - cache.keys())
        if missing:
            rows = index.reconstruct_batch(np.asarray(missing, dtype=np.int64))
            for i, v in zip(missing, rows):
                cache[i] = torch.from_numpy(np.array(v, dtype=np.float32))
        out = torch.stack([cache[int(i)] for i in flat.tolist()]) if len(flat) else torch.zeros(0, index.d)
        return out.reshape(*ids_t.shape, index.d)

    def spec_dict(self) -> dict[str, Any]:
        return asdict(self.spec)
