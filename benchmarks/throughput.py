"""Throughput figures of the episode layer and of Lightning itself.

    python benchmarks/throughput.py      # writes benchmarks/results/throughput.json (~3 min on 2 idle cores)
    python benchmarks/throughput.py --quick   # a smoke run -> benchmarks/results/throughput_quick.json

1. Sampler + collate alone: episodes/s drawing 5-way 5-shot 15-query Glyphs episodes from memory (class draw,
   item draw, one gather, uint8 -> normalised float), single process. Target: >= 1,000/s.
2. `zoo fit` (Lightning, with the shipped config's callbacks: checkpointing, episode table, throughput monitor,
   LR monitor, CSV logging) against a plain PyTorch loop on the identical model, optimiser and episodes:
   training episodes/s of each and their ratio, alternating runs and taking the median. Target: ratio >= 0.9.

Claims (``claims`` in the results file): the sampler's rate over its timed chunks exceeds the 1,000 episodes/s
target (one-sample over chunks), and `zoo fit` keeps at least 90% of the plain loop's rate, paired over the
alternating repeats (each repeat's `zoo fit` rate against 0.9x the plain rate measured just before it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import lightning.pytorch as pl

from common import ROOT, claim, write_results
from zoo.cli.lightning_cli import build_cli

CONFIG = str(ROOT / "configs/protonet/glyphs.yaml")
COMMAND = "python benchmarks/throughput.py"


def sampler_rates(n_episodes: int, chunks: int) -> tuple[float, list[float]]:
    """Episodes/s over all ``n_episodes``, and of each of ``chunks`` consecutive chunks of them."""
    from datamodules.images import GlyphsDataModule

    dm = GlyphsDataModule(n_way=5, k_shot=5, q_query=15)
    ds = dm.dataset("train")
    for i in range(50):  # warm-up: first-touch of the cached tensors
        ds[(0, i)]
    per_chunk, seconds = n_episodes // chunks, []
    for c in range(chunks):
        start = time.perf_counter()
        for i in range(c * per_chunk, (c + 1) * per_chunk):
            ds[(1, i)]
        seconds.append(time.perf_counter() - start)
    return per_chunk * chunks / sum(seconds), [per_chunk / s for s in seconds]


class EpochTimer(pl.Callback):
    """Wall time of the training epoch alone (data loading included, validation and set-up excluded)."""

    def on_train_epoch_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.start


def make(episodes: int, tmp: str):
    cli = build_cli(["fit", "--config", CONFIG, "--config", str(ROOT / "configs/logger/csv.yaml"),
                     f"--trainer.logger.init_args.save_dir={tmp}", "--trainer.max_epochs=1",
                     f"--data.train_episodes={episodes}", "--trainer.limit_val_batches=0",
                     "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"], run=False)
    return cli


def lightning_rate(episodes: int, tmp: str) -> float:
    cli = make(episodes, tmp)
    timer = EpochTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return episodes / timer.seconds


def plain_rate(episodes: int, tmp: str) -> float:
    cli = make(episodes, tmp)  # the same model, optimiser factory and datamodule, built from the same config
    model, dm = cli.model, cli.datamodule
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    model.train()
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(0)
    start = time.perf_counter()
    for episode in loader:
        loss, _, _ = model.episode_loss(episode)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return episodes / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=60, help="training episodes per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sampler-episodes", type=int, default=3000)
    parser.add_argument("--sampler-chunks", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="5 episodes, 2 repeats, 300 sampler episodes, written "
                        "to throughput_quick.json (checks the script works; the README's figures stay)")
    args = parser.parse_args(argv)
    if args.quick:
        args.episodes, args.repeats, args.sampler_episodes = 5, 2, 300

    sampler, chunk_rates = sampler_rates(args.sampler_episodes, args.sampler_chunks)
    print(f"sampler + collate, 5-way 5-shot 15-query from memory: {sampler:,.0f} episodes/s", flush=True)
    plain, light = [], []
    with tempfile.TemporaryDirectory() as tmp:
        plain_rate(20, tmp)  # warm-up (allocator, first-touch)
        for _ in range(args.repeats):
            plain.append(plain_rate(args.episodes, tmp))
            light.append(lightning_rate(args.episodes, tmp))
            print(f"  plain {plain[-1]:.2f} eps/s, zoo fit {light[-1]:.2f} eps/s", flush=True)
    p, l_ = statistics.median(plain), statistics.median(light)
    print(f"30-way 1-shot 5-query training, Conv-4 on Glyphs: plain loop {p:.2f} episodes/s, zoo fit "
          f"{l_:.2f} episodes/s, ratio {l_ / p:.3f}")
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    claims = [claim("sampler-over-1000-episodes-per-s", "The episode sampler + collate draws more than 1,000 5-way "
                    "5-shot 15-query Glyphs episodes/s (one-sample over timed chunks)", chunk_rates,
                    [1000.0] * len(chunk_rates), seeds=1, trained=False),
              claim("zoo-fit-within-10pct-of-plain-loop", "`zoo fit` trains at least 90% as many episodes/s as a "
                    "plain PyTorch loop on the same model and episodes (paired over alternating repeats)",
                    light, [0.9 * p_ for p_ in plain], seeds=1, trained=False)]
    path = write_results("throughput_quick" if args.quick else "throughput", {
        "command": command,
        "sampler": {"setting": "5-way 5-shot 15-query, Glyphs 28x28 in memory", "episodes_per_s": round(sampler, 1),
                    "episodes": args.sampler_episodes, "chunk_episodes_per_s": [round(r, 1) for r in chunk_rates],
                    "target": 1000},
        "lightning_vs_plain": {"setting": "ProtoNet Conv-4, Glyphs, 30-way 1-shot 5-query training episodes",
                               "episodes_per_run": args.episodes, "plain_episodes_per_s": [round(x, 3) for x in plain],
                               "zoo_fit_episodes_per_s": [round(x, 3) for x in light],
                               "median_plain": round(p, 3), "median_zoo_fit": round(l_, 3),
                               "ratio": round(l_ / p, 3), "target_ratio": 0.9},
        "claims": claims})
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
