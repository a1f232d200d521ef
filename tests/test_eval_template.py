"""zoo.training.base.ZooModule's evaluation template: one validation/test dispatch and one ``records[stage]`` for every
system. A system supplies ``evaluate_batch`` (per-item results with their index) and, if it reports more than
means, ``summarise_items``; the template buffers, gathers across ranks, drops DDP padding and keeps the records."""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
import warnings
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

import zoo
from zoo.training.base import ZooModule
from zoo.training.metrics import Z95

warnings.filterwarnings("ignore", ".*(does not have many workers|LeafSpec|treespec).*")

#: the template's dispatch: no system may define these itself
DISPATCH = ("validation_step", "test_step", "on_validation_epoch_start", "on_test_epoch_start",
            "on_validation_epoch_end", "on_test_epoch_end")


def quiet_trainer() -> pl.Trainer:
    return pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", devices=1)


def zoo_systems() -> list[type]:
    """Every ZooModule subclass defined anywhere under zoo/ (walked, so moved files are still found)."""
    for info in pkgutil.walk_packages(zoo.__path__, "zoo."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found, todo = [], [ZooModule]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("zoo."):
                found.append(sub)
    return found


def test_no_system_writes_its_own_evaluation_dispatch():
    systems = zoo_systems()
    names = {cls.__name__ for cls in systems}
    # the five that each had their own copy, and the episodic methods built on them
    assert {"EpisodicModule", "NotaRelationModule", "MetaDMoE", "MetaRTL", "NAPModule", "ProtoNet", "MAML", "GPAM",
            "ProtoNOTA", "RAML"} <= names
    own = [f"{cls.__module__}.{cls.__qualname__}.{hook}" for cls in systems for hook in DISPATCH
           if getattr(cls, hook) is not getattr(ZooModule, hook)]
    assert not own, f"these systems dispatch evaluation themselves instead of through ZooModule: {own}"
    for cls in systems:  # nor keep a buffer or records of their own under the old names
        source = inspect.getsource(cls)
        for old in ("_eval_outputs", "self._outputs", "self._eval[", "self._eval.", "report_items("):
            assert old not in source, f"{cls.__qualname__} still uses {old}"


def test_nota_relation_modules_train_through_the_episodic_step():
    from zoo.training.episodic import EpisodicModule
    from zoo.methods.gpam import NotaRelationModule

    assert issubclass(NotaRelationModule, EpisodicModule)
    assert "training_step" not in vars(NotaRelationModule)


# -- a toy system: items are dicts {"index", "acc"} served one batch at a time -----------------------------------
class Toy(ZooModule):
    item_key, count_name, ci_names = "thing", "things", ("acc",)

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen: list[tuple[str, list[int]]] = []

    def evaluate_batch(self, batch, batch_idx, stage):
        return {"index": batch["index"], "acc": batch["acc"], "pair": torch.stack([batch["acc"], -batch["acc"]], 1)}

    def summarise_items(self, stage, index, values):
        self.seen.append((stage, index.tolist()))
        return super().summarise_items(stage, index, values)


def batches(*pairs):
    """One item per batch: ``(index, acc)`` pairs."""
    return DataLoader([{"index": torch.tensor([i]), "acc": torch.tensor([a], dtype=torch.float32)} for i, a in pairs],
                      batch_size=None)


def test_template_buffers_every_batch_summarises_once_and_keeps_sorted_records():
    model = Toy()
    # batches of 2, 1 and 2 items, out of order
    data = DataLoader([{"index": torch.tensor([4, 1]), "acc": torch.tensor([0.0, 0.75])},
                       {"index": torch.tensor([0]), "acc": torch.tensor([1.0])},
                       {"index": torch.tensor([3, 2]), "acc": torch.tensor([0.25, 0.5])}], batch_size=None)
    out = quiet_trainer().test(model, dataloaders=data, verbose=False)[0]
    assert model.seen == [("test", [0, 1, 2, 3, 4])]  # one summary, every item once, sorted
    # mean .5; sample variance (.25 + .0625 + 0 + .0625 + .25) / 4 = .15625
    assert out["test/acc"] == pytest.approx(0.5)
    assert out["test/acc_ci95"] == pytest.approx(Z95 * math.sqrt(0.15625) / math.sqrt(5))
    assert out["test/things"] == 5.0
    assert "test/pair" not in out  # several values per item: kept in the records, not logged
    rows = model.records["test"]
    assert [r["thing"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[1] == {"thing": 1, "acc": 0.75, "pair": [0.75, -0.75]}
    assert not model._eval_buffer  # nothing left for the next evaluation


def test_template_gathers_two_ranks_and_drops_the_padding_repeat():
    class TwoRanks(Toy):
        """``all_gather`` appends what "rank 1" holds: items 1, 3 and the padding repeat of item 0 (index first,
        then each value in the order evaluate_batch returns them)."""

        def __init__(self):
            super().__init__()
            other_acc = torch.tensor([0.75, 0.25, 1.0])
            self.rank1 = [torch.tensor([1, 3, 0]), other_acc, torch.stack([other_acc, -other_acc], 1)]

        def all_gather(self, data, group=None, sync_grads=False):
            return torch.stack([data, self.rank1.pop(0).to(data.dtype)])

    model = TwoRanks()
    out = quiet_trainer().test(model, dataloaders=batches((0, 1.0), (2, 0.5), (4, 0.0)), verbose=False)[0]
    assert [r["thing"] for r in model.records["test"]] == [0, 1, 2, 3, 4]
    assert out["test/things"] == 5.0  # item 0 counted once
    assert out["test/acc"] == pytest.approx(0.5)


def test_validation_and_test_keep_their_own_records():
    model = Toy()
    trainer = quiet_trainer()
    trainer.validate(model, dataloaders=batches((0, 1.0), (1, 0.0)), verbose=False)
    out = trainer.test(model, dataloaders=batches((5, 0.5)), verbose=False)[0]
    assert [r["thing"] for r in model.records["val"]] == [0, 1]
    assert [r["thing"] for r in model.records["test"]] == [5]
    assert out["test/acc"] == 0.5


def test_several_dataloaders_are_summarised_apart_and_combined_in_the_stage_records():
    class Named(Toy):
        def eval_set(self, stage, dataloader_idx):
            return f"{stage}/set{dataloader_idx}", {"set": dataloader_idx}

    model = Named()
    out = quiet_trainer().test(model, dataloaders=[batches((0, 1.0), (1, 0.0)), batches((0, 0.25))],
                               verbose=False)
    assert sorted(model.seen) == [("test/set0", [0, 1]), ("test/set1", [0])]
    assert out[0]["test/set0/acc"] == 0.5 and out[1]["test/set1/acc"] == 0.25
    assert [r["thing"] for r in model.records["test/set1"]] == [0]
    assert [(r["thing"], r["set"]) for r in model.records["test"]] == [(0, 0), (1, 0), (0, 1)]

    default = Toy()  # the default names: the stage for dataloader 0, <stage>/<index> for the others
    out = quiet_trainer().test(default, dataloaders=[batches((0, 1.0)), batches((0, 0.0))], verbose=False)
    assert out[0]["test/acc"] == 1.0 and out[1]["test/1/acc"] == 0.0
    assert [r.get("dataloader") for r in default.records["test"]] == [None, 1]


def test_items_open_at_the_end_of_a_stage_are_finished_and_counted():
    class Streaming(Toy):
        """An item spans two batches (as a Meta-DMoE domain): it is returned with its second batch, and the last,
        cut short, by finish_items."""

        def __init__(self):
            super().__init__()
            self.open: dict[int, list[float]] = {}

        def evaluate_batch(self, batch, batch_idx, stage):
            i = int(batch["index"])
            self.open.setdefault(i, []).append(float(batch["acc"]))
            if len(self.open[i]) < 2:
                return None
            return self._items([i])

        def finish_items(self, stage):
            return self._items(sorted(self.open)) if self.open else None

        def _items(self, which):
            acc = torch.tensor([sum(self.open.pop(i)) / 2 for i in which])
            return {"index": torch.tensor(which), "acc": acc, "pair": torch.stack([acc, -acc], 1)}

    model = Streaming()
    out = quiet_trainer().test(model, dataloaders=batches((0, 1.0), (0, 0.0), (1, 1.0), (1, 1.0), (2, 0.5)),
                               verbose=False)[0]
    assert [(r["thing"], r["acc"]) for r in model.records["test"]] == [(0, 0.5), (1, 1.0), (2, 0.25)]
    assert out["test/things"] == 3.0


@pytest.mark.parametrize(("items", "error", "message"), [
    ({"acc": torch.ones(2)}, TypeError, "must return an 'index' tensor"),
    ({"index": torch.arange(2), "acc": [1.0, 0.0]}, TypeError, "'acc' must be a tensor"),
    ({"index": torch.arange(2), "acc": torch.ones(3)}, ValueError, r"'acc' must hold one row per item \(2 items\)"),
])
def test_malformed_batch_results_are_named(items, error, message):
    class Bad(Toy):
        def evaluate_batch(self, batch, batch_idx, stage):
            return items

    with pytest.raises(error, match=message):
        quiet_trainer().test(Bad(), dataloaders=batches((0, 1.0)), verbose=False)


def test_a_system_without_evaluate_batch_says_so():
    class Silent(ZooModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)

    with pytest.raises(NotImplementedError, match="Silent does not define evaluate_batch"):
        quiet_trainer().test(Silent(), dataloaders=batches((0, 1.0)), verbose=False)


# -- the old attribute names, kept for code outside the repository ----------------------------------------------
def test_old_record_names_still_read_the_records_with_a_deprecation_warning():
    from zoo.training.episodic import EpisodicModule
    from zoo.methods.meta_dmoe import MetaDMoE
    from zoo.methods.meta_rtl import MetaRTL

    episodes = SimpleNamespace(records={"test": [{"episode": 0, "acc": 0.5}]})
    with pytest.warns(DeprecationWarning, match="records"):
        assert EpisodicModule.episode_records.fget(episodes) is episodes.records
    items = SimpleNamespace(records={"test": [{"item": 3, "acc": 1.0, "loss": 0.1}, {"item": 7, "acc": 0.0,
                                                                                      "loss": 2.0}]})
    with pytest.warns(DeprecationWarning):
        assert MetaRTL.item_records.fget(items) == {"test": {3: 1.0, 7: 0.0}}  # the old {index: correct}
    domains = SimpleNamespace(records={"test": [
        {"domain_index": 0, "method": "meta_dmoe", "acc": 0.5, "acc_erm": 0.25, "adapt_seconds": 0.1, "domain_id": 7},
        {"domain_index": 1, "method": "meta_dmoe", "acc": 1.0, "acc_erm": 0.75, "adapt_seconds": 0.2, "domain_id": 9},
    ]})
    with pytest.warns(DeprecationWarning):
        old = MetaDMoE.domain_records.fget(domains)
    assert old == {"test": {"method": "meta_dmoe", "domain_index": [0, 1], "acc": [0.5, 1.0], "acc_erm": [0.25, 0.75],
                            "adapt_seconds": [0.1, 0.2], "domain_id": [7.0, 9.0]}}


# -- NOTA threshold calibration through the template --------------------------------------------------------------
def test_protonota_calibrates_on_the_gathered_validation_queries_and_recounts_by_hand():
    from zoo.methods.gpam import ProtoNOTA

    fake = SimpleNamespace(threshold=torch.tensor(float("inf")))
    # 2 episodes of 3 queries, 2-way (label 2 = NOTA); nearest-prototype distance and class of each query
    queries = {"best": torch.tensor([[0.1, 0.9, 0.3], [0.2, 0.8, 0.4]]),
               "nearest": torch.tensor([[0, 1, 1], [0, 0, 1]]),
               "y": torch.tensor([[0, 2, 1], [1, 2, 1]]), "n": torch.tensor([2, 2])}
    ProtoNOTA.calibrate(fake, "val", queries)
    # by distance: .1 right class, .2 wrong class, .3 right, .4 right, .8 NOTA, .9 NOTA. Answering the 4 nearest
    # as classes and the 2 farthest as NOTA gets 5 of 6 (no other cut does as well): threshold (.4 + .8) / 2
    assert float(fake.threshold) == pytest.approx(0.6)
    counts = ProtoNOTA.recount(fake, queries)
    # [correct, queries, NOTA tp, fp, fn] per episode
    assert counts.tolist() == [[3.0, 3.0, 1.0, 0.0, 0.0], [2.0, 3.0, 1.0, 0.0, 0.0]]
