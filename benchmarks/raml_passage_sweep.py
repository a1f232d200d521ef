"""Can retrieved passages help at all? RAML's enrichment with no training, swept over the passage weight.

RAML's metric head (``zoo/methods/raml.py``) scores a query by ``cos(z_c, n(q) + beta * mean_p n(p))``. Trained for 1,000
episodes it learns beta ~0.48 from its start of 0.5 and ties ProtoNet-text (``benchmarks/raml_wordnet.py``). This
diagnostic separates the two possible causes, the budget (beta and the scale barely move at the configured learning
rate) and the information (the passages carry nothing the query's own embedding lacks): with the frozen MiniLM and
the same FAISS index, it scores the fixed episodes for each beta with nothing trained, enriching the query only (as
RAML does) or the support items too (prototypes from enriched supports), picks the best beta on validation episodes
and tests it against beta = 0 (plain cosine ProtoNet) on the fixed test episodes, paired per episode.

    python benchmarks/raml_passage_sweep.py            # 5-way 1- and 5-shot, 200 validation / 600 test episodes
    python benchmarks/raml_passage_sweep.py --quick    # 20 / 30 episodes -> raml_passage_sweep_quick.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import CSV_LOGGER, claim, write_results
from raml_wordnet import RAML_CONFIG, data_overrides

from zoo.cli.lightning_cli import build_cli
from zoo.training.metrics import mean_ci95

COMMAND = "python benchmarks/raml_passage_sweep.py"
BETAS = (0.0, 0.25, 0.5, 1.0, 2.0)
MODES = ("query", "both")


def episode_scores(model, episode, betas=BETAS) -> dict[tuple[str, float], float]:
    """Accuracy of one episode for each (mode, beta): cosine to prototypes of (optionally) enriched supports."""
    def embed(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        z = F.normalize(model.encoder(texts), dim=-1)
        ids = model.retrieve(texts)
        p = F.normalize(model.retriever.passage_vectors(ids), dim=-1).mean(1)
        return z, F.normalize(model.encoder.projection(p) if model.encoder.projection is not None else p, dim=-1)

    s, sp = embed(list(episode.support_x))
    q, qp = embed(list(episode.query_x))
    out = {}
    for mode in MODES:
        for beta in betas:
            zs = s + beta * sp if mode == "both" else s
            protos = torch.stack([zs[episode.support_y == c].mean(0) for c in range(episode.n_way)])
            logits = F.normalize(q + beta * qp, dim=-1) @ F.normalize(protos, dim=-1).T
            out[(mode, beta)] = float((logits.argmax(1) == episode.query_y).float().mean())
    return out


def sweep(shot: int, val_episodes: int, test_episodes: int, save_dir: str) -> dict:
    cli = build_cli(["fit", "--config", str(ROOT / RAML_CONFIG), "--config", CSV_LOGGER,
                     f"--trainer.logger.init_args.save_dir={save_dir}", f"--data.k_shot={shot}",
                     *data_overrides(40)], run=False)
    dm, model = cli.datamodule, cli.model
    dm.prepare_data()
    dm.setup("fit")
    model.attach_corpus(dm.passage_corpus())
    model.eval()
    per: dict[str, dict[tuple[str, float], list[float]]] = {}
    with torch.no_grad():
        for split, n in (("val", val_episodes), ("test", test_episodes)):
            ds = dm.dataset(split)
            rows = [episode_scores(model, ds[(0, i)]) for i in range(n)]
            per[split] = {key: [r[key] for r in rows] for key in rows[0]}
    val_mean = {key: sum(v) / len(v) for key, v in per["val"].items()}
    best = {mode: max(BETAS, key=lambda b, m=mode: val_mean[(m, b)]) for mode in MODES}
    table = {f"{mode}/beta={beta:g}": {split: dict(zip(("mean", "ci95"), mean_ci95(per[split][(mode, beta)])))
                                       for split in per}
             for mode in MODES for beta in BETAS}
    claims = [claim(f"passages-{mode}-best-beta-vs-none-5w{shot}s",
                    f"Frozen MiniLM, no training: enriching the {'query' if mode == 'query' else 'query and supports'} "
                    f"with its retrieved passages (beta={best[mode]:g}, best on validation) beats plain cosine "
                    f"ProtoNet (beta=0), WordNet 5-way {shot}-shot",
                    per["test"][(mode, best[mode])], per["test"][(mode, 0.0)], seeds=1, trained=False) for mode in MODES]
    return {"table": table, "best_beta_on_val": best, "claims": claims,
            "episodes": {"val": val_episodes, "test": test_episodes}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    args = parser.parse_args(argv)
    val_n, test_n = (20, 30) if args.quick else (200, 600)
    settings = {}
    with tempfile.TemporaryDirectory() as tmp:
        for shot in args.shots:
            settings[f"5w{shot}s"] = sweep(shot, val_n, test_n, tmp)
            for key, row in settings[f"5w{shot}s"]["table"].items():
                print(f"5w{shot}s {key:18s} val {100 * row['val']['mean']:.2f}  test {100 * row['test']['mean']:.2f} "
                      f"+- {100 * row['test']['ci95']:.2f}")
    claims = [c for s in settings.values() for c in s.pop("claims")]
    write_results("raml_passage_sweep_quick" if args.quick else "raml_passage_sweep",
                  {"command": COMMAND + (" --quick" if args.quick else ""), "betas": list(BETAS),
                   "settings": settings, "claims": claims})
    for c in claims:
        print(f"{c['id']}: {100 * c['diff']:+.2f} +- {100 * c['ci95']:.2f} points, holds={c['holds']}")


if __name__ == "__main__":
    main()
