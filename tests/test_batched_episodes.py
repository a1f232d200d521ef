"""episodes_per_batch: B episodes per training step, computed in one batched pass, with the per-episode results
and the DDP striping of B separate steps."""

from __future__ import annotations

import pytest
import torch

from datamodules.base import EpisodicDataModule
from datamodules.episodes import EpisodeDataset, EpisodeSampler, TensorSource, collate_episodes
from zoo import Conv4, ProtoNet


def image_source(n_classes=8, per_class=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorSource(torch.randn(n_classes * per_class, 1, 28, 28, generator=g),
                        torch.arange(n_classes).repeat_interleave(per_class))


class Toy(EpisodicDataModule):
    def build_sources(self):
        return {split: image_source(seed=i) for i, split in enumerate(("train", "val", "test"))}


@pytest.mark.parametrize("world", [1, 2, 3])
def test_batches_group_each_ranks_episodes_and_stripe_like_single_episodes(world):
    for rank in range(world):
        plain = list(EpisodeSampler(10, rank, world))
        grouped = EpisodeSampler(10, rank, world, episodes_per_batch=4)
        batches = list(grouped)
        assert len(batches) == len(grouped) == -(-len(plain) // 4)
        assert [k for batch in batches for k in batch] == plain  # same keys, same order, only grouped
    with pytest.raises(ValueError, match="episodes_per_batch"):
        EpisodeSampler(10, episodes_per_batch=0)


def test_the_datamodule_batches_training_only():
    dm = Toy(n_way=3, k_shot=2, q_query=2, train_episodes=6, val_episodes=4, episodes_per_batch=4)
    train = list(dm.train_dataloader())
    assert [len(b.support_y) for b in train] == [4, 2]
    ep = train[0]
    assert ep.batched and ep.support_x.shape == (4, 6, 1, 28, 28) and ep.query_y.shape == (4, 6)
    assert (ep.n_way, ep.k_shot, ep.q_query) == (3, 2, 2) and ep.index.tolist() == [0, 1, 2, 3]
    single = dm.dataset("train")[(0, 2)]
    assert torch.equal(ep.unbatch()[2].support_x, single.support_x) and ep.unbatch()[2].index == 2
    assert not any(b.batched for b in dm.val_dataloader())  # evaluation stays one episode per step


def test_collate_refuses_mixed_settings_and_non_tensor_inputs():
    ds = EpisodeDataset(image_source(), 3, 1, 2, seed=0, split="train")
    other = EpisodeDataset(image_source(), 4, 1, 2, seed=0, split="train")
    with pytest.raises(ValueError, match="different settings"):
        collate_episodes([ds[(0, 0)], other[(0, 0)]])
    text = ds[(0, 0)]
    text.support_x = ["a"] * 3
    with pytest.raises(TypeError, match="episodes_per_batch: 1"):
        collate_episodes([text, text])


def test_protonet_batch_of_four_gives_the_losses_of_four_single_episodes():
    """One backbone pass over four episodes equals four passes (evaluation mode: BatchNorm uses running statistics,
    so the batch composition cannot matter); the batched loss is their mean."""
    torch.manual_seed(0)
    model = ProtoNet(Conv4(hidden=8), loss_terms=["cross", "prototriplet"]).eval()
    ds = EpisodeDataset(image_source(), 3, 2, 2, seed=0, split="train")
    episodes = [ds[(0, i)] for i in range(4)]
    with torch.no_grad():
        singles = [model.episode_loss(e) for e in episodes]
        loss, logits, terms = model.episode_loss(collate_episodes(episodes))
    assert logits.shape == (4, 6, 3)
    for b, (_, single_logits, _) in enumerate(singles):
        assert torch.allclose(logits[b], single_logits, atol=1e-5)
    assert float(loss) == pytest.approx(sum(float(s[0]) for s in singles) / 4, rel=1e-5)
    for name in ("cross", "prototriplet"):
        assert float(terms[name]) == pytest.approx(sum(float(s[2][name]) for s in singles) / 4, rel=1e-5)


def test_lightning_trains_protonet_on_meta_batches(tmp_path):
    import lightning.pytorch as pl

    dm = Toy(n_way=3, k_shot=1, q_query=2, train_episodes=4, val_episodes=2, test_episodes=2, episodes_per_batch=2)
    model = ProtoNet(Conv4(hidden=8))
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 2  # 4 episodes in steps of 2
    assert torch.isfinite(trainer.callback_metrics["train/loss_epoch"])
