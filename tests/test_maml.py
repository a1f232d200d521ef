"""MAML and ANIL: learning, the ANIL shortcut, a meta-batch in one vmapped pass, evaluation under inference mode,
and the `zoo` command end to end on the shipped Glyphs configs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from datamodules.episodes import EpisodeDataset, TensorSource, collate_episodes
from support import ROOT, zoo_env
from zoo import ANIL, MAML, Conv4
from test_cli import read_rows
from zoo.cli.commands import main
from zoo.training.inner_loop import adapt, functional_forward

MAML_GLYPHS = str(ROOT / "configs/maml/glyphs.yaml")


def episodes(n=4, n_way=3, k_shot=1, q_query=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    source = TensorSource(torch.randn(8 * 5, 1, 28, 28, generator=g), torch.arange(8).repeat_interleave(5))
    ds = EpisodeDataset(source, n_way, k_shot, q_query, seed=seed, split="train")
    return [ds[(0, i)] for i in range(n)]


def small(cls=MAML, **kw):
    torch.manual_seed(0)
    return cls(Conv4(hidden=8), n_way=3, **kw)


def test_meta_training_lowers_the_query_loss_in_a_few_steps():
    model = small(inner_lr=0.1)
    batch = collate_episodes(episodes())
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(6):
        loss = model.episode_loss(batch)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def test_a_meta_batch_in_one_vmapped_pass_gives_the_losses_and_gradients_of_single_episodes():
    """Second order, training mode: each task keeps its own BatchNorm statistics under vmap."""
    model = small().train()
    eps = episodes()
    logits = model(collate_episodes(eps))
    singles = [model(e) for e in eps]
    for b, single in enumerate(singles):
        assert torch.allclose(logits[b], single, atol=1e-5)
    batched = torch.autograd.grad(model.episode_loss(collate_episodes(eps))[0], list(model.parameters()))
    looped = torch.autograd.grad(sum(model.episode_loss(e)[0] for e in eps) / len(eps), list(model.parameters()))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(batched, looped))


def test_anil_shortcut_equals_the_generic_inner_loop_on_the_head():
    model = small(ANIL).train()
    ep = episodes(1)[0]
    params = dict(model.learner.named_parameters())
    fast = adapt(params, lambda p: F.cross_entropy(functional_forward(model.learner, p, ep.support_x), ep.support_y),
                 model.inner_steps, model.inner_lr, which="head.")
    assert torch.allclose(model(ep), functional_forward(model.learner, fast, ep.query_x), atol=1e-5)
    assert model.adapted_names == ["head.weight", "head.bias"]


def test_evaluation_adapts_under_inference_mode_and_changes_no_weight():
    model = small(learn_inner_lr=True).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ep = episodes(1)[0]
    with torch.inference_mode():
        adapted = model(ep)
    zero_steps = small(learn_inner_lr=True, eval_inner_steps=0).eval()
    with torch.inference_mode():
        unadapted = zero_steps(ep)
    assert not torch.allclose(adapted, unadapted)  # the inner loop ran
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(k.startswith("learner") and "running" in k for k in before)  # batch statistics: no buffers


def test_bad_arguments_and_mismatched_way_are_clear_errors():
    with pytest.raises(ValueError, match="adapt must be one of"):
        small(adapt="heads")
    with pytest.raises(ValueError, match="5-way head but the episode is 3-way"):
        MAML(Conv4(hidden=8), n_way=5)(episodes(1)[0])


def csv_logger(tmp_path):
    return ["--config", str(ROOT / "configs/logger/csv.yaml"), f"--trainer.logger.init_args.save_dir={tmp_path}"]


def test_fast_dev_run_of_the_shipped_config(glyphs_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", MAML_GLYPHS, *csv_logger(tmp_path), "--trainer.fast_dev_run=true",
          "--data.episodes_per_batch=2"])


@pytest.mark.parametrize("config", ["maml/glyphs.yaml",
                                    pytest.param("anil/glyphs-5shot.yaml", marks=pytest.mark.slow)])
def test_fit_checkpoint_then_test_in_a_fresh_process(config, glyphs_data, tmp_path):
    config = str(ROOT / "configs" / config)
    tiny = ["--trainer.enable_progress_bar=false", "--data.episodes_per_batch=2", "--data.train_episodes=4",
            "--data.val_episodes=4", "--data.test_episodes=6", "--trainer.max_epochs=1"]
    main(["fit", "--config", config, *csv_logger(tmp_path), *tiny])
    run = next((tmp_path / "csv").iterdir())
    ckpt = next((run / "checkpoints").glob("best-*.ckpt"))
    hparams = torch.load(ckpt, weights_only=True)["hyper_parameters"]
    assert hparams["_class_path"] in ("zoo.MAML", "zoo.ANIL") and hparams["inner_lr"] == 0.4
    in_process = read_rows(run / "test_episodes.csv")
    out = tmp_path / "fresh"
    proc = subprocess.run([sys.executable, "-m", "zoo", "test", "--config", config, *csv_logger(out), *tiny,
                           "--ckpt_path", str(ckpt)], cwd=ROOT, env=zoo_env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = read_rows(next((out / "csv").iterdir()) / "test_episodes.csv")
    # same episodes and weights; the losses differ in the last digits only (one thread in the subprocess)
    assert [(r["episode"], r["acc"]) for r in fresh] == [(r["episode"], r["acc"]) for r in in_process]
    assert [float(r["loss"]) for r in fresh] == pytest.approx([float(r["loss"]) for r in in_process], rel=1e-4)
