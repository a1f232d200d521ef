"""Training throughput with episodes_per_batch B in {1, 4, 16}: episodes/s of ProtoNet and MAML training steps.

    python benchmarks/batched_episodes.py     # writes benchmarks/results/batched_episodes.json

A training step here is what Lightning's step does without Lightning: the (batched) episode loss, backward and
an Adam step, on the shipped Glyphs configs' models (ProtoNet Conv-4 on its 30-way 1-shot 5-query training
episodes; MAML Conv-4 on 5-way 1-shot 5-query, second order, one inner step). Episodes are drawn and collated
beforehand, so the figure is the model's compute alone. Each B runs the same episodes; the median of a few
repeats is reported, with the speed-up over B = 1. On a machine whose cores are shared with other jobs the
absolute rates are low and noisy; the integrator may re-run it on an idle machine (or a GPU, ``--device cuda``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from common import claim, write_results
from datamodules.episodes import collate_episodes
from datamodules.images import GlyphsDataModule
from zoo import MAML, Conv4, ProtoNet

COMMAND = "python benchmarks/batched_episodes.py"
SYSTEMS = {
    "ProtoNet": (lambda: ProtoNet(Conv4()), dict(n_way=5, train_n_way=30, train_q_query=5),
                 "Conv-4, 30-way 1-shot 5-query training episodes"),
    "MAML": (lambda: MAML(Conv4(), n_way=5), dict(n_way=5, train_q_query=5),
             "Conv-4, 5-way 1-shot 5-query, second order, 1 inner step"),
}


def rate(make_model, episodes, batch: int, device: str) -> float:
    torch.manual_seed(0)
    model = make_model().to(device).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    batches = [collate_episodes(episodes[i: i + batch]) if batch > 1 else episodes[i]
               for i in range(0, len(episodes), batch)]
    batches = [b.to(device) for b in batches]
    for b in batches[:1]:  # warm-up: allocator, first-touch
        model.episode_loss(b)[0].backward()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for b in batches:
        loss = model.episode_loss(b)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return len(episodes) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=32, help="episodes per timed run (a multiple of 16)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 episodes, B in {1, 4}, one repeat, "
                        "results to batched_episodes_quick.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.episodes, args.repeats, args.batches = 16, 1, [1, 4]
    rows = {}
    for name, (make_model, setting, description) in SYSTEMS.items():
        dm = GlyphsDataModule(k_shot=1, **setting)
        ds = dm.dataset("train")
        episodes = [ds[(0, i)] for i in range(args.episodes)]
        rates = {b: [] for b in args.batches}
        for _ in range(args.repeats):  # alternate the Bs so slow phases of a shared machine hit all of them
            for b in args.batches:
                rates[b].append(rate(make_model, episodes, b, args.device))
        medians = {b: statistics.median(r) for b, r in rates.items()}
        rows[name] = {"setting": description, "episodes_per_run": args.episodes,
                      "episodes_per_s": {str(b): [round(x, 3) for x in r] for b, r in rates.items()},
                      "median_episodes_per_s": {str(b): round(m, 3) for b, m in medians.items()},
                      "speedup_vs_b1": {str(b): round(m / medians[args.batches[0]], 3) for b, m in medians.items()}}
        print(name, rows[name]["median_episodes_per_s"], rows[name]["speedup_vs_b1"], flush=True)
    claims = [claim(f"batched-b{b}-vs-b1-{name.lower()}-cpu",
                    f"{name} trains more episodes/s with {b} episodes per step than with 1 ({args.device}, "
                    f"paired over repeats)", r[str(b)], r[str(args.batches[0])], seeds=1, trained=False)
              for name, row in rows.items() for r in [row["episodes_per_s"]] for b in args.batches[1:]]
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    print(f"wrote {write_results('batched_episodes' + ('_quick' if args.quick else ''), {'command': command, 'device': args.device, 'systems': rows, 'claims': claims})}")


if __name__ == "__main__":
    sys.exit(main())
