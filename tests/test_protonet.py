"""ProtoNet: logits by hand, loss falls with training, hyper-parameters load with weights_only=True."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from datamodules.base import EpisodicDataModule
from datamodules.episodes import Episode, TensorSource
from zoo.nn.backbones import Conv4, ResNet12
from zoo.methods.protonet import ProtoNet


def test_logits_by_hand_with_identity_backbone():
    # support: class 0 at (0,0) and (2,0) -> prototype (1,0); class 1 at (0,2) -> prototype (0,2).
    ep = Episode(support_x=torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 2.0]]),
                 support_y=torch.tensor([0, 0, 1, 1]), query_x=torch.tensor([[1.0, 1.0]]),
                 query_y=torch.tensor([0]), classes=torch.tensor([7, 9]))
    model = ProtoNet(nn.Identity())
    # query (1,1): squared distances 1 to (1,0) and 2 to (0,2)
    assert torch.allclose(model(ep), torch.tensor([[-1.0, -2.0]]))
    cos = ProtoNet(nn.Identity(), distance="cosine")(ep)
    assert cos.shape == (1, 2) and torch.isclose(cos[0, 0], cos[0, 1])  # (1,1) is 45 degrees from both


def test_learned_temperature_starts_at_its_scale_and_trains():
    # support prototypes (1,0) and (0,1); query (1,0): cosines 1 and 0, times the scale 1/T = 10
    ep = Episode(support_x=torch.tensor([[1.0, 0.0], [0.0, 1.0]]), support_y=torch.tensor([0, 1]),
                 query_x=torch.tensor([[1.0, 0.0]]), query_y=torch.tensor([1]), classes=torch.tensor([3, 4]))
    model = ProtoNet(nn.Identity(), distance="cosine", temperature=0.1, learn_temperature=True)
    assert torch.allclose(model(ep), torch.tensor([[10.0, 0.0]]))
    loss, _, _ = model.episode_loss(ep)
    loss.backward()
    assert model.log_scale.grad.item() > 0  # a wrong confident answer: the loss wants a smaller scale
    fixed = ProtoNet(nn.Identity(), distance="cosine", temperature=0.1)
    assert fixed.log_scale is None and "log_scale" not in fixed.state_dict()  # off: checkpoints keep their keys
    assert torch.allclose(fixed(ep), torch.tensor([[10.0, 0.0]]))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ProtoNet(nn.Identity(), temperature=0.0)


def test_backbone_output_dims():
    assert Conv4(1, 64, "flatten", 28).out_dim == 64 and Conv4(3, 64, "flatten", 84).out_dim == 1600
    assert Conv4(3, 64, "avg", 84)(torch.zeros(2, 3, 84, 84)).shape == (2, 64)
    assert ResNet12(3, (8, 8, 8, 16))(torch.zeros(2, 3, 32, 32)).shape == (2, 16)
    with pytest.raises(ValueError, match="pooling"):
        Conv4(pooling="max")


class Blobs(EpisodicDataModule):
    """Gaussian class clusters rendered as 1x16x16 images: learnable in a few steps."""

    def build_sources(self):
        g = torch.Generator().manual_seed(0)
        out = {}
        for i, split in enumerate(("train", "val", "test")):
            centres = torch.randn(10, 1, 16, 16, generator=g)
            x = centres.repeat_interleave(20, 0) + 0.8 * torch.randn(200, 1, 16, 16, generator=g)
            out[split] = TensorSource(x, torch.arange(10).repeat_interleave(20) + 100 * i)
        return out


@pytest.mark.parametrize("terms", [["cross"], ["cross", "prototriplet"], ["cross", "fullicnn"],
                                   ["cross", "prototriplet", "fullicnn"]], ids="+".join)
def test_a_few_training_steps_lower_the_loss(terms):
    pl.seed_everything(0)
    dm = Blobs(n_way=5, k_shot=1, q_query=5, train_episodes=30)
    model = ProtoNet(Conv4(1, 16, "avg", 16), loss_terms=terms, optimizer=lambda p: torch.optim.Adam(p, lr=3e-3))
    episodes = list(dm.train_dataloader())
    with torch.no_grad():
        before = sum(model.episode_loss(e)[0] for e in episodes[:10]) / 10
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    model.eval()
    with torch.no_grad():
        after = sum(model.episode_loss(e)[0] for e in episodes[:10]) / 10
    assert after < 0.7 * before, (before, after)


def test_hparams_of_a_python_built_model_are_primitive():
    model = ProtoNet(Conv4(), distance="cosine", temperature=2.0)
    assert dict(model.hparams)["distance"] == "cosine" and dict(model.hparams)["loss_terms"] is None
    assert all(not isinstance(v, torch.nn.Module) for v in model.hparams.values())
