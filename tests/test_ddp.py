"""DDP through Lightning: the real `zoo fit` command on 2 CPU processes (gloo) sees different episodes per rank."""

from __future__ import annotations

import json
import subprocess
import sys

from support import ROOT, zoo_env


def test_two_process_ddp_ranks_see_distinct_episodes_and_evaluation_is_deduplicated(glyphs_data, tmp_path):
    probe = tmp_path / "probe"
    cmd = [sys.executable, "-m", "zoo", "fit", "--config", str(ROOT / "configs/protonet/glyphs.yaml"),
           "--config", str(ROOT / "configs/logger/csv.yaml"), f"--trainer.logger.init_args.save_dir={tmp_path}",
           "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu", "--trainer.max_epochs=2",
           "--trainer.enable_progress_bar=false", "--trainer.num_sanity_val_steps=0",
           "--data.train_episodes=6", "--data.val_episodes=5", "--data.test_episodes=7",
           "--trainer.callbacks+=probes.EpisodeProbe", f"--trainer.callbacks.out_dir={probe}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=zoo_env(tmp_path), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]

    train = [{(e, i) for e, i, _ in r["seen"]["train"]} for r in ranks]
    assert len(train[0]) == len(train[1]) == 6  # 2 epochs x 3 episodes each: same count per rank
    assert not train[0] & train[1]  # distinct episodes
    assert {i for _, i in train[0] | train[1]} == set(range(6))  # together: exactly the single-process set
    classes = [tuple(c) for r in ranks for _, _, c in r["seen"]["train"]]
    assert len(set(classes)) > len(classes) // 2  # not the same classes replayed on every rank

    test = [r["seen"]["test"] for r in ranks]
    assert len(test[0]) == len(test[1]) == 4  # 7 episodes padded to 8
    assert set(test[0]) | set(test[1]) == set(range(7))
    assert ranks[0]["metrics"]["test/episodes"] == 7.0  # the padded duplicate is not counted twice
    assert ranks[0]["metrics"]["test/acc"] == ranks[1]["metrics"]["test/acc"]
