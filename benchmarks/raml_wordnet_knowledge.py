"""RAML on the knowledge-gap WordNet benchmark (issue 21): does retrieval help where the query lacks the knowledge?

The query is a synset's lemmas alone ("beagle", "trench knife"); its class is a semantic category (a hypernym);
the corpus (``wordnet-knowledge``, 79,512 ``"<lemmas>: <gloss>"`` passages) holds every synset's gloss, the
queries' own included, and never a category's label term (``datamodules/text/wordnet.py``, ``text="lemma"``). On
the gloss benchmark (``benchmarks/raml_wordnet.py``) the queries *are* glosses and retrieval adds nothing; here the
gloss is exactly what the query lacks.

For each shot setting and each training seed this script trains, through the real CLI configs, on the same frozen
MiniLM with a trainable identity-initialised linear map, and tests each best-on-validation checkpoint (the same
epochs are candidates for every method, the same validation episodes decide) on the *same* fixed test episodes
(``data.eval_seed`` fixed; ``seed`` varies the initialisation and the training episodes):

* ``raml``: RAML, metric head, P = 3 retrieved passages, multi-view fusion (``configs/raml/wordnet_knowledge.yaml``);
* ``protonet-text``: cosine ProtoNet-text on the lemma alone (``configs/protonet_text/wordnet.yaml``,
  ``--data.text=lemma``), the baseline without retrieval;
* ``protonet-text-passages``: ProtoNet-text over the query and the *mean* of its top-3 passages' vectors, with the
  same learned passage weight and scale (``--model.fusion=none``): the simple retrieval baseline a practitioner
  would try first (the claims call it ``retrieval-concat``: the query and its passages, combined by averaging);
* ``raml-random-passages`` (ablation): RAML reading 3 passages drawn at random from the corpus;
* ``raml-no-passages`` (the floor): the same model with no passages, what the lemma alone gives;
* ``raml-gold-passage`` (the ceiling): each text's own synset passage given directly instead of retrieved, what
  retrieval could add at best.

Claims (``benchmarks.common.seed_claim``: per seed, the mean paired difference over the shared test episodes, a
t-interval over seeds): ``raml-retrieval-vs-none-wordnet-knowledge-5w{k}s``,
``raml-vs-protonet-text-wordnet-knowledge-5w{k}s``, ``raml-vs-retrieval-concat-wordnet-knowledge-5w{k}s``, and
the ablation and bound claims ``raml-retrieval-vs-random-...`` and ``raml-gold-vs-none-...`` (the knowledge helps
when given). Diagnostics in the results: how often retrieval finds the gold passage (top-1 and top-P hit rate of
the test texts, :func:`gold_hit_rate`), the share of the floor-to-ceiling gap each method closes
(:func:`gap_closed`), and RAML's learned passage weight per seed (does it read its passages?).

Budget (the defaults): 4 epochs of 100 training episodes, 40 validation episodes after each epoch, 300 fixed test
episodes, so that 5 seeds x 6 methods of one shot setting fit one ~20-minute command on the shared 2-core CPU
(the config's own 10 x 100 / 100 / 600 is 2,600 episodes per run against these 860). Whether the budget stopped a
method shows in its selected epochs (the last one: still rising) and its validation curve (``runs``).
Cost: the corpus is embedded once into a keyed FAISS index under ``$METAZOO_DATA/retrieval`` (79,512 passages, in
batches of 256: :func:`prepare_index`); the benchmark is capped at 40 examples per class (``--max-per-class``,
as raml_wordnet.py: the classes and the corpus stay the full benchmark's); every example is embedded once into the
frozen encoder's shared cache and its passages retrieved in one batched search (:func:`retrieve_all`); a run then
costs milliseconds per episode. ``--max-minutes`` stops starting new
seeds (each seed runs all methods, so completed seeds stay paired); a claim on fewer than 5 seeds says why.
Runs of the shot settings not run now are kept from the existing results file, so 1-shot and 5-shot can be
measured by two commands (both recorded under ``commands``).

    python benchmarks/raml_wordnet_knowledge.py --quick    # pipeline check -> raml_wordnet_knowledge_quick.json
    python benchmarks/raml_wordnet_knowledge.py --shots 1 --max-minutes 20   # the README's 1-shot table
    python benchmarks/raml_wordnet_knowledge.py --shots 5 --max-minutes 20   # adds 5-shot to the same file
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import MIN_SEEDS, RESULTS, seed_claim, write_results
from raml_wordnet import data_overrides, encode_all_texts, print_summary, run, summarize

CONFIG = "configs/raml/wordnet_knowledge.yaml"
PROTO_CONFIG = "configs/protonet_text/wordnet.yaml"
BENCH = "wordnet-knowledge"
COMMAND = "python benchmarks/raml_wordnet_knowledge.py"
METHODS = {
    "raml": (CONFIG, []),
    "protonet-text": (PROTO_CONFIG, ["--data.text=lemma"]),
    "protonet-text-passages": (CONFIG, ["--model.fusion=none"]),
    "raml-random-passages": (CONFIG, ["--model.passage_source=random"]),
    "raml-no-passages": (CONFIG, ["--model.n_passages=0"]),
    "raml-gold-passage": (CONFIG, ["--model.passage_source=gold"]),
}
FLOOR, CEILING = "raml-no-passages", "raml-gold-passage"
#: (claim id stem, statement, method a, method b): each claims that a beats b, per shot setting
CLAIMS = [
    ("raml-retrieval-vs-none", "RAML with retrieved passages beats the same model without passages (the floor), "
     "knowledge-gap WordNet 5-way {k}-shot", "raml", FLOOR),
    ("raml-vs-protonet-text", "RAML beats ProtoNet-text (cosine) on the lemma alone, knowledge-gap WordNet 5-way "
     "{k}-shot", "raml", "protonet-text"),
    ("raml-vs-retrieval-concat", "RAML beats ProtoNet-text over the query and its top-3 passages (vectors averaged, "
     "same encoder, passages, learned weight and scale), knowledge-gap WordNet 5-way {k}-shot", "raml",
     "protonet-text-passages"),
    ("raml-retrieval-vs-random", "RAML with retrieved passages beats the same model with random passages, "
     "knowledge-gap WordNet 5-way {k}-shot", "raml", "raml-random-passages"),
    ("raml-gold-vs-none", "RAML given each text's gold passage (the ceiling) beats the same model without passages "
     "(the floor): the corpus holds knowledge that decides the class, knowledge-gap WordNet 5-way {k}-shot",
     CEILING, FLOOR),
]


def gold_hit_rate(retrieved: list[list[int]], gold: list[int]) -> dict[str, float]:
    """Share of texts whose gold passage is the top retrieved one (``top1``) and among all retrieved (``topP``).

    ``retrieved[i]``: passage ids retrieved for text ``i``, best first; ``gold[i]``: its gold passage id. A low
    ``topP`` bounds what retrieval can add below the ceiling, whatever the reader learns.
    """
    if len(retrieved) != len(gold) or not gold:
        raise ValueError(f"gold_hit_rate: {len(retrieved)} retrieved rows for {len(gold)} gold ids (need >= 1)")
    top1 = sum(int(row[0]) == g for row, g in zip(retrieved, gold)) / len(gold)
    top_p = sum(g in {int(j) for j in row} for row, g in zip(retrieved, gold)) / len(gold)
    return {"top1": top1, "topP": top_p, "texts": len(gold), "P": len(retrieved[0])}


def gap_closed(method: float, floor: float, ceiling: float) -> float | None:
    """``(method - floor) / (ceiling - floor)``: the share of what the gold passage adds over no passages that
    ``method`` recovers (1: as good as the gold passage, 0: no better than none); None when the ceiling is not
    above the floor (then there is no gap to close)."""
    return (method - floor) / (ceiling - floor) if ceiling > floor else None


def prepare_index(max_per_class: int | None = None, batch_size: int = 256) -> tuple[Any, Any, dict[str, Any]]:
    """The datamodule and the retriever RAML's runs will load: the corpus embedded once into the keyed index
    (:func:`zoo.nn.retrieval.keyed_index_dir`; the batch size is not part of an embedding's identity, and 256 runs
    ~2x faster than 64 on this CPU: ``benchmarks/results/passage_embedding.json``). A capped build
    (``max_per_class``) keeps the uncapped build's corpus, hence the same index. Returns (datamodule, retriever,
    what it cost)."""
    from safefiles import data_root
    from datamodules.text import WordNetDataModule
    from zoo.nn.retrieval import IndexSpec, Retriever
    from zoo.nn.text_encoder import TextEncoder

    dm = WordNetDataModule(text="lemma", max_per_class=max_per_class)
    start = time.perf_counter()
    # the encoder settings of the config's retrieval encoder (RAML builds a frozen copy without the projection)
    encoder = TextEncoder(pooling="mean", max_length=64, freeze=True, batch_size=batch_size)
    retriever = Retriever(encoder, dm.passage_corpus(), IndexSpec("flat", "cosine"),
                          index_root=data_root() / "retrieval")
    retriever.prepare()
    return dm, retriever, {"passages": len(retriever.corpus), "built_now": retriever.stats["built"],
                           "seconds": round(time.perf_counter() - start, 1), "index_dir": str(retriever.index_dir)}


def retrieve_all(dm: Any, retriever: Any, n_passages: int = 3) -> dict[str, Any]:
    """Retrieve every example's passages in one batched search, into the result cache that every run's retriever
    shares (``Retriever(share_results=True)``): a flat index searched a few texts at a time, as episodes ask, runs
    ~20x slower per text than one large batch (``benchmarks/results/faiss_bench.json``), and the first run paid
    that for each new text. The query vectors come from the frozen encoder's shared cache (``encode_all_texts``
    filled it). Returns the gold-passage hit rate of the test split's texts (:func:`gold_hit_rate`)."""
    from zoo.nn.text_encoder import TextEncoder

    sources = dm.build_sources()
    texts = [t for source in sources.values() for t in source.items]
    encoder = TextEncoder(pooling="mean", max_length=64, freeze=True)  # shares the cache encode_all_texts filled
    retriever.retrieve(texts, n_passages, vectors=encoder.pooled(texts))
    test = list(sources["test"].items)
    gold = dm.gold_passages()
    ids, _ = retriever.retrieve(test, n_passages)  # cached now
    return gold_hit_rate([list(map(int, row)) for row in ids], [gold[t] for t in test])


def by_seed(rows: list[dict[str, Any]], shot: int, method: str) -> dict[int, list[float]]:
    return {r["seed"]: r["per_episode"] for r in rows if r["shot"] == shot and r["method"] == method}


def claims_of(rows: list[dict[str, Any]], seeds_reason: str | None = None) -> list[dict[str, Any]]:
    """Every claim of :data:`CLAIMS` whose two methods ran, per shot setting, paired seed by seed over the test
    episodes (all runs share them) with :func:`common.seed_claim`; fewer than 5 paired seeds need ``seeds_reason``."""
    out = []
    for shot in sorted({r["shot"] for r in rows}):
        for stem, statement, a, b in CLAIMS:
            ra, rb = by_seed(rows, shot, a), by_seed(rows, shot, b)
            seeds = sorted(set(ra) & set(rb))
            if len(seeds) < 2:
                continue
            reason = seeds_reason if len(seeds) < MIN_SEEDS else None
            out.append(seed_claim(f"{stem}-{BENCH}-5w{shot}s", statement.format(k=shot), [ra[s] for s in seeds],
                                  [rb[s] for s in seeds], seeds_reason=reason))
    return out


def bounds(summary: dict[str, Any]) -> dict[str, Any]:
    """Per shot setting: floor, ceiling and the share of the gap each method closes (:func:`gap_closed`)."""
    out = {}
    for key in summary:
        setting, method = key.split("/", 1)
        if method != FLOOR or f"{setting}/{CEILING}" not in summary:
            continue
        lo, hi = summary[key]["mean"], summary[f"{setting}/{CEILING}"]["mean"]
        out[setting] = {"floor": lo, "ceiling": hi, "gap_closed": {
            m: gap_closed(summary[f"{setting}/{m}"]["mean"], lo, hi)
            for m in METHODS if f"{setting}/{m}" in summary and m not in (FLOOR, CEILING)}}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 1 epoch, a few episodes: checks the pipeline")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-episodes", type=int, default=100)
    parser.add_argument("--val-episodes", type=int, default=40)
    parser.add_argument("--test-episodes", type=int, default=300)
    parser.add_argument("--max-per-class", type=int, default=40,
                        help="cap on examples per class (0: all): fewer texts to embed and retrieve once; the corpus "
                             "and its index stay the full benchmark's (raml_wordnet.data_overrides)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no new seed after this many minutes (completed seeds stay paired)")
    args = parser.parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else argv
    if args.quick:
        args.seeds, args.epochs, args.shots = args.seeds[:2], 1, args.shots[:1]
        args.train_episodes, args.val_episodes, args.test_episodes = 6, 6, 30
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds repeats a seed: {args.seeds}")
    name = "raml_wordnet_knowledge_quick" if args.quick else "raml_wordnet_knowledge"
    episodes = {"train": args.train_episodes, "val": args.val_episodes, "test": args.test_episodes}
    setting = {"episodes": episodes, "epochs": args.epochs, "max_per_class": args.max_per_class or None,
               "eval_seed": 0, "n_way": 5, "q_query": 5,
               "encoder": "all-MiniLM-L6-v2, frozen, mean pooling, max_length 64, trainable linear map (identity "
                          "start)",
               "raml": "metric head, P=3 retrieved passages (flat cosine index over the 79,512-passage "
                       "wordnet-knowledge corpus), multiview fusion over pooled vectors, passage weight 0.5 and "
                       "logit scale 10 at the start (both learned)",
               "selection": "best validation accuracy over the epochs (the same candidates and validation "
                            "episodes for every method)",
               "configs": {"raml": CONFIG, "protonet-text": PROTO_CONFIG},
               "methods": {m: " ".join([c, *o]) for m, (c, o) in METHODS.items()}}
    previous = json.loads((RESULTS / f"{name}.json").read_text()) if (RESULTS / f"{name}.json").is_file() else None
    kept: list[dict[str, Any]] = []
    if previous is not None:
        old = {k: previous["setting"].get(k) for k in ("episodes", "epochs", "max_per_class")}
        if old != {"episodes": episodes, "epochs": args.epochs, "max_per_class": args.max_per_class or None}:
            parser.error(f"{name}.json was measured with {old}; this run's budget differs (episodes {episodes}, "
                         f"epochs {args.epochs}, max_per_class {args.max_per_class}): move the file away or use "
                         "the same budget")
        # a (shot, seed) run not re-run now is kept: seeds can be added to a setting by a later command
        kept = [r for r in previous["runs"] if not (r["shot"] in args.shots and r["seed"] in args.seeds)]
    started = time.perf_counter()
    cap = args.max_per_class or None
    data = data_overrides(cap)
    dm, retriever, index_cost = prepare_index(cap)
    print(f"index: {index_cost}", flush=True)
    encoding = encode_all_texts(cap, text="lemma")
    print(f"encoded {encoding['texts']} texts in {encoding['seconds']:.0f} s", flush=True)
    t0 = time.perf_counter()
    diagnostic = retrieve_all(dm, retriever)
    encoding["retrieval_seconds"] = round(time.perf_counter() - t0, 1)
    print(f"retrieved for every text in {encoding['retrieval_seconds']:.0f} s; gold passage hit rate (test texts): "
          f"{diagnostic}", flush=True)
    rows: list[dict[str, Any]] = []
    stopped = None
    with tempfile.TemporaryDirectory() as tmp:
        for shot in args.shots:
            for seed in args.seeds:
                minutes = (time.perf_counter() - started) / 60
                if args.max_minutes is not None and minutes > args.max_minutes:
                    stopped = (f"--max-minutes {args.max_minutes:g} reached after {minutes:.1f} min, before 5w{shot}s "
                               f"seed {seed}")
                    print(stopped, flush=True)
                    break
                for method in args.methods:
                    r = run(method, shot, seed, episodes, args.epochs, tmp, data=data, methods=METHODS)
                    r.pop("_cli")
                    rows.append(r)
                    print(f"5-way {shot}-shot {method:24s} seed {seed}: {100 * r['test_acc']:.2f} +- "
                          f"{100 * r['test_ci95']:.2f} % (epoch {r.get('selected_epoch')}, train "
                          f"{r['train_seconds'] / 60:.1f} min" + (f", learned {r['learned']})" if "learned" in r
                                                                  else ")"), flush=True)
    all_rows = kept + rows
    done = {shot: sorted({r["seed"] for r in all_rows if r["shot"] == shot})
            for shot in sorted({r["shot"] for r in all_rows})}
    reason = ("quick pipeline check" if args.quick else
              f"the CPU budget (--max-minutes per command) ran out after seeds {done}")
    summary = summarize(all_rows)
    claims = claims_of(all_rows, seeds_reason=reason)
    command = " ".join([COMMAND, *argv_used])
    commands = [c for c in (previous or {}).get("commands", []) if c != command] + [command]
    if previous is not None and not kept:
        commands = [command]  # every setting re-measured: only this command produced the file
    load = dict(zip(("load_1min", "load_5min", "load_15min"), (round(x, 2) for x in os.getloadavg())))
    path = write_results(name, {
        "command": commands[0], "commands": commands, "setting": {**setting, "seeds_run": done},
        "summary": summary, "claims": claims, "bounds": bounds(summary),
        "diagnostics": {"gold_hit_rate_test": diagnostic}, "index": index_cost, "encoding": encoding,
        "stopped": [s for s in (previous or {}).get("stopped", [])  # a setting run again has only its new stop
                    if kept and not any(f"5w{k}s" in s for k in args.shots)] + ([stopped] if stopped else []),
        "runs": all_rows, "wall_minutes": round((time.perf_counter() - started) / 60, 1), "load_average_at_end": load})
    print(f"wrote {path}\n")
    print_summary(summary, claims)


if __name__ == "__main__":
    main()
