"""zoo.training.base.ZooModule: the gather / de-duplicate / mean +- CI helper (with a fake 2-rank gather carrying DDP
padding duplicates), config saving that loads with weights_only=True, and the optimiser wiring."""

from __future__ import annotations

import math
import warnings

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from datamodules.episodes import EpisodeDataset, TensorSource
from datamodules.bo import GPPriorFunctionsDataModule
from zoo.nn.backbones import Conv4
from zoo.training.base import ZooModule, dedupe_by_index
from zoo.training.metrics import Z95
from zoo.methods.nap import NAPModule, NAPNetwork
from zoo.methods.protonet import ProtoNet
from zoo.training.schedulers import WarmupLinearDecay

warnings.filterwarnings("ignore", ".*(does not have many workers|LeafSpec|treespec).*")


def quiet_trainer(**kw) -> pl.Trainer:
    return pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", devices=1, **kw)


def test_dedupe_keeps_each_index_once_sorted():
    index = torch.tensor([3, 1, 3, 0])
    values = {"acc": torch.tensor([0.3, 0.1, 0.3, 0.0]), "curve": torch.arange(8.0).view(4, 2)}
    idx, rows = dedupe_by_index(index, values)
    assert idx.tolist() == [0, 1, 3]
    assert rows["acc"].tolist() == pytest.approx([0.0, 0.1, 0.3])
    assert rows["curve"].tolist() == [[6.0, 7.0], [2.0, 3.0], [0.0, 1.0]]  # the first row of index 3 is kept
    with pytest.raises(ValueError, match="'acc' has 2 rows for 4 item indices"):
        dedupe_by_index(index, {"acc": torch.zeros(2)})


class TwoRankItems(ZooModule):
    """A module whose test items are scored on "rank 0" while ``all_gather`` appends what "rank 1" holds.

    5 items striped over 2 ranks as EpisodeSampler does (rank r takes r, r+2, ... of 6 = ceil(5/2)*2): rank 0
    gets 0, 2, 4 and rank 1 gets 1, 3 and the padding repeat of item 0. ``all_gather`` is called by
    ``report_items`` for the index first, then for each value in order, so the fake answers in that order.
    """

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.rank1 = [torch.tensor([1, 3, 0]), torch.tensor([0.75, 0.25, 1.0]), torch.tensor([[1.0], [3.0], [0.0]])]
        self.calls = 0
        self.rows = None

    def all_gather(self, data, group=None, sync_grads=False):
        other = self.rank1[self.calls]
        self.calls += 1
        return torch.stack([data, other.to(data.dtype)])

    def test_step(self, batch, batch_idx):
        pass

    def on_test_epoch_end(self):
        self.rows = self.report_items("test", torch.tensor([0, 2, 4]),
                                      {"acc": torch.tensor([1.0, 0.5, 0.0]),
                                       "curve": torch.tensor([[0.0], [2.0], [4.0]])},
                                      ci=("acc",), count_name="episodes")


def test_report_items_gathers_two_ranks_drops_padding_and_logs_the_interval():
    model = TwoRankItems()
    out = quiet_trainer().test(model, dataloaders=DataLoader([0]), verbose=False)[0]
    index, rows = model.rows
    assert index.tolist() == [0, 1, 2, 3, 4]  # item 0 once, although rank 1 repeated it as padding
    assert rows["acc"].tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert rows["curve"][:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]  # multi-value items are returned, not logged
    # mean (1 + .75 + .5 + .25 + 0) / 5 = .5; sample variance (.25 + .0625 + 0 + .0625 + .25) / 4 = .15625
    assert out["test/acc"] == pytest.approx(0.5)
    assert out["test/acc_ci95"] == pytest.approx(Z95 * math.sqrt(0.15625) / math.sqrt(5))
    assert out["test/episodes"] == 5.0
    assert "test/curve" not in out


def test_report_items_rejects_an_unknown_ci_name():
    class Bad(TwoRankItems):
        def on_test_epoch_end(self):
            self.report_items("test", torch.tensor([0]), {"acc": torch.tensor([1.0])}, ci=("accuracy",))

    model = Bad()
    model.all_gather = lambda data, group=None, sync_grads=False: data  # one process
    with pytest.raises(ValueError, match=r"ci names \['accuracy'\]"):
        quiet_trainer().test(model, dataloaders=DataLoader([0]), verbose=False)


def tiny_protonet() -> ProtoNet:
    torch.manual_seed(0)
    return ProtoNet(Conv4(in_channels=1, hidden=8, image_size=28))


def tiny_episodes() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    source = TensorSource(torch.rand(40, 1, 28, 28, generator=g), torch.arange(40) % 4)
    ds = EpisodeDataset(source, n_way=2, k_shot=1, q_query=2, seed=0, split="test")
    return DataLoader([ds[(0, i)] for i in range(3)], batch_size=None)


def tiny_nap() -> NAPModule:
    torch.manual_seed(0)
    net = NAPNetwork(2, d_model=8, n_layers=1, n_heads=2, dim_feedforward=16, n_buckets=20, af_hidden=8)
    return NAPModule(net, horizon=2, minibatch_size=2, grad_accumulation=1, eval_budget=3)


def tiny_tasks() -> DataLoader:
    dm = GPPriorFunctionsDataModule(dim=2, num_candidates=12, test_tasks=2, test_seeds=1, eval_n_init=2, eval_batch_size=2)
    return dm.test_dataloader()


@pytest.mark.parametrize("kind", ["protonet", "nap"])
def test_checkpoint_of_each_module_type_loads_with_weights_only(kind, tmp_path):
    model, data = (tiny_protonet(), tiny_episodes()) if kind == "protonet" else (tiny_nap(), tiny_tasks())
    trainer = quiet_trainer()
    out = trainer.test(model, dataloaders=data, verbose=False)[0]
    assert ("test/acc" if kind == "protonet" else "test/regret") in out
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)  # no pickled objects: hyper-parameters are plain values
    if kind == "protonet":
        assert "backbone" not in ckpt["hyper_parameters"]  # an object built in Python: passed again on load
        back = ProtoNet.load_from_checkpoint(path, backbone=Conv4(in_channels=1, hidden=8, image_size=28))
        assert back.hparams.distance == "euclidean"
    else:
        # the injected network records its architecture, so the checkpoint rebuilds it with no arguments
        assert ckpt["hyper_parameters"]["network"]["init_args"]["d_model"] == 8
        back = NAPModule.load_from_checkpoint(path)
        assert back.net.init_args == model.net.init_args and back.hparams.eval_budget == 3
    for k, v in model.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k


def test_configure_optimizers_scales_groups_and_wires_the_scheduler():
    class TwoRates(ZooModule):
        def __init__(self):
            super().__init__(optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
                             scheduler=lambda o: WarmupLinearDecay(o, warmup_steps=2, total_steps=4))
            self.a, self.b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)

        def parameter_groups(self):
            return [{"params": list(self.a.parameters()), "lr_scale": 1.0},
                    {"params": list(self.b.parameters()), "lr_scale": 0.5}]

    conf = TwoRates().configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "epoch"
    # WarmupLinearDecay: factors 0/2, 1/2, then (4 - 2) / (4 - 2) = 1, (4 - 3) / 2 = .5, 0 at step 4
    lrs = []
    for _ in range(5):
        lrs += [g["lr"] for g in opt.param_groups]
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0, 0.0, 0.05, 0.025, 0.1, 0.05, 0.05, 0.025, 0.0, 0.0])  # (group a, group b)

    class Plateau(ZooModule):
        def __init__(self):
            super().__init__(scheduler=lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o))
            self.a = torch.nn.Linear(1, 1)

    with pytest.raises(ValueError, match="no metric for ReduceLROnPlateau"):
        Plateau().configure_optimizers()


# -- the seeded data-module base ----------------------------------------------------------------------------------
def test_seeded_data_modules_key_eval_items_by_eval_seed_and_stripe_ranks_equally():
    from types import SimpleNamespace

    small = dict(dim=2, num_candidates=10, test_tasks=3, test_seeds=1, eval_n_init=1, eval_batch_size=1)
    a, b = GPPriorFunctionsDataModule(seed=1, eval_seed=7, **small), GPPriorFunctionsDataModule(seed=2, eval_seed=7, **small)
    assert torch.equal(a.task("test", 0, 0)["y"], b.task("test", 0, 0)["y"])  # same fixed evaluation tasks
    assert not torch.equal(a.task("train", 0, 0)["y"], b.task("train", 0, 0)["y"])  # different training tasks
    # without eval_seed, evaluation items are keyed by seed (what every existing run did)
    assert torch.equal(GPPriorFunctionsDataModule(seed=7, **small).task("test", 0, 0)["y"], a.task("test", 0, 0)["y"])
    # rank r of 2 takes items r, r + 2, ... of 3 padded to 4: equal counts, item 0 repeated once as padding
    seen = []
    for rank in (0, 1):
        a.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        seen.append([int(batch["index"]) for batch in a.test_dataloader()])
    assert seen == [[0, 2], [1, 0]]
