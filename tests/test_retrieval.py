"""FAISS retrieval: exactness against torch, persistence, staleness, caching, threads, no search in workers."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.text.passages import PassageCorpus, read_passages
from datamodules.wordnet import words
from fixtures.text.shared import load_encoder
from support import ROOT
from zoo.nn.retrieval import (IndexSpec, PassageIndex, Retriever, StaleIndexError, as_search_array, available_cpus,
                           brute_force_topk, build_index, default_nlist, index_key, keyed_index_dir, search,
                           set_faiss_threads)
from zoo.nn.text_encoder import masked_mean

FIX = ROOT / "tests" / "fixtures" / "text"


@pytest.fixture(scope="module")
def minilm():
    """The bundled all-MiniLM-L6-v2, frozen (nothing in it trains, so every test can share it)."""
    return load_encoder()


class HashEncoder:
    """A tiny deterministic bag-of-words encoder with the retriever's interface (fast; no transformer)."""

    out_dim = 64

    def __init__(self, salt: str = ""):
        self.salt = salt
        self.calls = 0

    def fingerprint(self) -> str:
        return f"hash-encoder{self.salt}"

    def encode(self, texts, normalize=None, progress=None):
        self.calls += 1
        out = torch.zeros(len(texts), self.out_dim)
        for i, t in enumerate(texts):
            for w in words(t):
                h = int.from_bytes(hashlib.blake2b((self.salt + w).encode(), digest_size=4).digest(), "little")
                out[i, h % self.out_dim] += 1.0
        return torch.nn.functional.normalize(out, dim=-1) if normalize else out


def clustered(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(20, d, generator=g) * 3
    return centers[torch.randint(0, 20, (n,), generator=g)] + torch.randn(n, d, generator=g)


def corpus_of(n: int) -> PassageCorpus:
    topics = ["music guitar song", "dog hound beagle", "river water boat", "tree forest leaf", "car engine road"]
    texts = [f"{topics[i % 5]} item {i}" for i in range(n)]
    return PassageCorpus([str(i) for i in range(n)], [f"t{i}" for i in range(n)], texts, name="toy")


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_flat_index_equals_brute_force_topk(metric):
    x, q = clustered(500, 16), clustered(40, 16, seed=1)
    spec = IndexSpec("flat", metric)
    scores, ids = search(build_index(x, spec), q, 10, spec)
    ref_scores, ref_ids = brute_force_topk(x, q, 10, metric)
    assert np.allclose(scores, ref_scores.numpy(), atol=1e-4)
    # ids equal wherever scores are not tied (ties may come back in either order)
    gaps = np.diff(ref_scores.numpy(), axis=1)
    untied = np.concatenate([np.abs(gaps[:, :1]) > 1e-5, (np.abs(gaps[:, 1:]) > 1e-5) & (np.abs(gaps[:, :-1]) > 1e-5),
                             np.abs(gaps[:, -1:]) > 1e-5], axis=1)
    assert (ids[untied] == ref_ids.numpy()[untied]).all() and untied.mean() > 0.9


def test_search_arrays_are_float32_contiguous_and_normalised():
    x = torch.randn(8, 5, dtype=torch.float64).T.contiguous().T  # non-contiguous float64
    a = as_search_array(x, "cosine")
    assert a.dtype == np.float32 and a.flags["C_CONTIGUOUS"] and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-6)
    assert np.allclose(as_search_array(x, "ip"), x.numpy().astype(np.float32))
    with pytest.raises(ValueError, match="2-d"):
        as_search_array(torch.zeros(3), "ip")


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_reach_high_recall(kind):
    x, q = clustered(3000, 32), clustered(100, 32, seed=2)
    _, exact = brute_force_topk(x, q, 10)
    spec = IndexSpec(kind, "cosine", hnsw_m=16, ef_search=64, ivf_nprobe=8)
    _, ids = search(build_index(x, spec), q, 10, spec)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact.numpy())])
    assert recall > 0.9, recall
    assert default_nlist(3000) == 76 and default_nlist(50) == 1


def test_index_persistence_round_trip_and_staleness(tmp_path):
    corpus = corpus_of(60)
    enc = HashEncoder()
    vectors = enc.encode([corpus.passage(i) for i in range(len(corpus))], normalize=True)
    for kind in ("flat", "hnsw", "ivf"):
        spec = IndexSpec(kind, ivf_nlist=2)
        meta = PassageIndex.expected_meta(enc.fingerprint(), corpus, 64, spec)
        built = PassageIndex.build(vectors, spec, meta)
        built.save(tmp_path / kind)
        saved = json.loads((tmp_path / kind / "meta.json").read_text())
        assert {k: saved[k] for k in meta} == meta and "faiss_version" in saved
        loaded = PassageIndex.load(tmp_path / kind, meta, spec)
        q = vectors[:7]
        assert all(np.array_equal(a, b) for a, b in zip(built.search(q, 5), loaded.search(q, 5)))
        assert not list((tmp_path / kind).glob(".*tmp"))
    spec = IndexSpec("flat")
    meta = PassageIndex.expected_meta(enc.fingerprint(), corpus, 64, spec)
    other_corpus = corpus_of(61)
    for stale, field in ((PassageIndex.expected_meta("another encoder", corpus, 64, spec), "encoder"),
                         (PassageIndex.expected_meta(enc.fingerprint(), other_corpus, 64, spec), "corpus_checksum"),
                         ({**meta, "kind": "hnsw"}, "kind")):
        with pytest.raises(StaleIndexError, match=field):
            PassageIndex.load(tmp_path / "flat", stale, spec)
    with pytest.raises(StaleIndexError, match="no persisted index"):
        PassageIndex.load(tmp_path / "absent", meta, spec)


def test_retriever_rebuilds_stale_index_and_caches_per_text(tmp_path):
    corpus = corpus_of(50)
    r = Retriever(HashEncoder(), corpus, IndexSpec("flat"), tmp_path / "idx", threads=1)
    ids, scores = r.retrieve(["beagle hound dog"], 5)
    assert r.stats["built"] and ids.shape == (1, 5)
    assert all("dog" in corpus.texts[j] for j in ids[0]) and (np.diff(scores[0]) <= 1e-6).all()
    searched = r.stats["searched"]
    again, _ = r.retrieve(["beagle hound dog", "beagle hound dog"], 3)
    assert r.stats["searched"] == searched and r.stats["cache_hits"] == 2  # served from the per-text cache
    assert np.array_equal(again[0], ids[0][:3])
    reloaded = Retriever(HashEncoder(), corpus, IndexSpec("flat"), tmp_path / "idx")
    reloaded.prepare()
    assert not reloaded.stats["built"]  # loaded from disk
    changed = Retriever(HashEncoder(salt="x"), corpus, IndexSpec("flat"), tmp_path / "idx")
    changed.prepare()
    assert changed.stats["built"]  # another encoder: the persisted index was stale and is rebuilt
    assert json.loads((tmp_path / "idx" / "meta.json").read_text())["encoder"] == "hash-encoderx"


def test_retriever_accepts_the_callers_query_vectors_and_returns_stored_passage_vectors(tmp_path):
    corpus, enc = corpus_of(30), HashEncoder()
    r = Retriever(enc, corpus, IndexSpec("flat"), tmp_path / "idx", threads=1, share_results=False)
    texts = ["guitar song music", "river boat"]
    mine = Retriever(enc, corpus, IndexSpec("flat"), tmp_path / "idx", threads=1, share_results=False)
    ids, scores = r.retrieve(texts, 4)
    calls = enc.calls
    given, given_scores = mine.retrieve(texts, 4, vectors=enc.encode(texts, normalize=False))
    assert np.array_equal(given, ids) and np.allclose(given_scores, scores)
    assert enc.calls == calls + 1  # only the vectors passed in: the retriever embedded nothing itself
    stored = r.passage_vectors(ids)
    assert stored.shape == (2, 4, HashEncoder.out_dim)
    expected = enc.encode([corpus.passage(int(j)) for j in ids.flatten()], normalize=True).view(2, 4, -1)
    assert torch.allclose(stored, expected, atol=1e-6)  # the indexed (normalised) vectors, read back
    with pytest.raises(ValueError, match="2 vectors for 1 texts"):
        mine.retrieve(["x"], 2, vectors=torch.zeros(2, HashEncoder.out_dim))


def test_retriever_drops_the_query_itself():
    corpus = corpus_of(20)
    query = corpus.texts[3]
    ids, _ = Retriever(HashEncoder(), corpus).retrieve([query], 4)
    assert 3 not in ids[0]
    ids, _ = Retriever(HashEncoder(), corpus, exclude_query_text=False).retrieve([query], 4)
    assert ids[0][0] == 3


class _RetrievingDataset(Dataset):
    def __init__(self, retriever):
        self.retriever = retriever

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.retriever.retrieve(["dog"], 1)[0]


def test_no_retrieval_inside_dataloader_workers():
    r = Retriever(HashEncoder(), corpus_of(10))
    with pytest.raises(RuntimeError, match="inside a DataLoader worker"):
        next(iter(DataLoader(_RetrievingDataset(r), num_workers=1, batch_size=None)))


def test_thread_count_is_cpus_over_world_size():
    cpus = available_cpus()
    assert set_faiss_threads(world_size=1) == cpus
    assert set_faiss_threads(world_size=cpus * 2) == 1
    assert set_faiss_threads(threads=1) == 1


def test_real_encoder_retrieves_the_relevant_passage(minilm):
    corpus = read_passages(FIX / "passages.tsv")
    r = Retriever(minilm, corpus, IndexSpec("flat"))
    ids, _ = r.retrieve(["a small hunting dog with a keen nose", "an instrument with strings you strum"], 1)
    assert [corpus.titles[i[0]] for i in ids] == ["Beagle", "Guitar"]


# -- first runs: keyed index directories, progress, and the batched passage embedding (issue 24) ------------------

def test_index_root_keeps_one_directory_per_corpus_encoder_and_settings(tmp_path):
    """Two settings whose corpora differ (a capped and a full WordNet build) each keep their own index under one
    root: neither rebuilds over the other, and the directory name says what the index is built from."""
    full, capped = corpus_of(40), corpus_of(39)
    a = Retriever(HashEncoder(), full, IndexSpec("flat"), index_root=tmp_path, threads=1)
    b = Retriever(HashEncoder(), capped, IndexSpec("flat"), index_root=tmp_path, threads=1)
    a.prepare(), b.prepare()
    assert a.stats["built"] and b.stats["built"] and a.index_dir != b.index_dir
    assert a.index_dir.parent == tmp_path and a.index_dir.name.startswith("toy-flat-")
    assert a.index_dir.name[-16:] == index_key(a.expected_meta())
    again = Retriever(HashEncoder(), full, IndexSpec("flat"), index_root=tmp_path, threads=1)
    again.prepare()
    assert not again.stats["built"] and again.index_dir == a.index_dir  # loaded, not rebuilt after b
    other = {"encoder": Retriever(HashEncoder(salt="x"), full, IndexSpec("flat"), index_root=tmp_path),
             "knobs": Retriever(HashEncoder(), full, IndexSpec("hnsw", hnsw_m=8), index_root=tmp_path),
             "metric": Retriever(HashEncoder(), full, IndexSpec("flat", metric="ip"), index_root=tmp_path)}
    for why, r in other.items():
        assert keyed_index_dir(tmp_path, r.expected_meta()) != a.index_dir, why
    # search-time knobs and the display name are not part of an index's identity
    same = Retriever(HashEncoder(), PassageCorpus(full.ids, full.titles, full.texts, name="toy"),
                     IndexSpec("flat", ef_search=7), index_root=tmp_path)
    assert keyed_index_dir(tmp_path, same.expected_meta()) == a.index_dir


def test_building_an_index_reports_progress(minilm, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("METAZOO_PROGRESS", "1")  # speak from the first item (a real build waits 2 s first)
    corpus = read_passages(FIX / "passages.tsv")
    Retriever(minilm, corpus, IndexSpec("hnsw"), index_root=tmp_path, threads=1).prepare()
    err = capsys.readouterr().err
    assert f"embedding {len(corpus)} " in err and "texts/s" in err and f"{len(corpus)} texts in" in err
    assert "building the hnsw index" in err and "vectors/s" in err


def test_chunked_add_builds_the_same_index(monkeypatch):
    import zoo.nn.retrieval as retrieval

    x = clustered(300, 16)
    for kind in ("flat", "hnsw", "ivf"):
        spec = IndexSpec(kind, ivf_nlist=4)
        whole = build_index(x, spec)
        monkeypatch.setattr(retrieval, "ADD_CHUNK", 64)
        chunked = build_index(x, spec)
        monkeypatch.undo()
        a, b = search(whole, x[:20], 5, spec), search(chunked, x[:20], 5, spec)
        assert np.array_equal(a[1], b[1]) and np.allclose(a[0], b[0]), kind


def test_batched_passage_embedding_matches_encoding_each_text_alone(minilm):
    """The length-sorted, per-batch-padded encode is numerically the reference: every text run alone through the
    transformer (no padding at all), mean-pooled, in the caller's order; long texts are cut at max_length."""
    corpus = read_passages(FIX / "passages.tsv")
    texts = [corpus.passage(i) for i in range(len(corpus))] + ["dog", "a " * 200, "", "Beagle: a small hound"]
    reference = []
    with torch.no_grad():
        for t in texts:
            enc = minilm.tokenizer([t], truncation=True, max_length=minilm.max_length, return_tensors="pt")
            states = minilm.model(**enc).last_hidden_state
            reference.append(masked_mean(states, enc["attention_mask"])[0])
    reference = torch.stack(reference)
    for batch_size in (1, 3, 64):
        minilm.batch_size, before = batch_size, minilm.batch_size
        try:
            got = minilm.encode(texts, normalize=False)
        finally:
            minilm.batch_size = before
        assert got.shape == reference.shape and not got.is_inference()
        assert torch.allclose(got, reference, atol=1e-5), (batch_size, (got - reference).abs().max())
    unit = minilm.encode(texts[:3], normalize=True)
    assert torch.allclose(unit, torch.nn.functional.normalize(reference[:3], dim=-1), atol=1e-5)
