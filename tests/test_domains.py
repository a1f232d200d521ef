"""The domain data layer: single-domain batches, domain-disjoint splits, sequential per-domain evaluation,
super-domains, and the readers' errors on bad DomainBed folders and WILDS metadata files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.domains import (DomainBedFolderDataModule, DomainDataModule, DomainSet, WildsMetadataDataModule,
                                 super_domains)
from datamodules.domains.core import DomainBatches, DomainSequence, DomainStripeSampler
from datamodules.domains.glyphs_domains import face_split, gaussian_blur, render_styled
from datamodules.episodes import TensorSource


def toy_set(domains=6, per_domain=10, classes=2, size=4) -> DomainSet:
    """Domain d's items have pixel value d (so a batch's domain can be read off its images)."""
    n = domains * per_domain
    dom = torch.arange(domains).repeat_interleave(per_domain)
    x = dom.float().view(-1, 1, 1, 1).expand(n, 1, size, size).clone()
    y = torch.arange(n) % classes
    split = {"train": list(range(domains - 2)), "val": [domains - 2], "test": [domains - 1]}
    return DomainSet(TensorSource(x, y), dom, [f"d{i}" for i in range(domains)], {0: "a", 1: "b"}, split)


def test_training_groups_come_from_one_domain_each_and_are_keyed():
    data = toy_set()
    ds = DomainBatches(data, "train", support_size=3, query_size=2, groups_per_batch=5, seed=1,
                       expert_of_domain={0: 0, 1: 0, 2: 1, 3: 1})
    b = ds[(0, 7)]
    assert b["support_x"].shape == (5, 3, 1, 4, 4) and b["query_y"].shape == (5, 2)
    for g in range(5):
        pixels = torch.cat([b["support_x"][g], b["query_x"][g]]).unique()
        assert pixels.tolist() == [float(b["domain"][g])]  # one domain per group
        assert int(b["expert"][g]) == {0: 0, 1: 0, 2: 1, 3: 1}[int(b["domain"][g])]
    assert set(b["domain"].tolist()) <= {0, 1, 2, 3}  # never a val/test domain
    again = ds[(0, 7)]
    assert torch.equal(again["support_x"], b["support_x"]) and torch.equal(again["domain"], b["domain"])
    assert not torch.equal(ds[(1, 7)]["support_x"], b["support_x"])  # another epoch, another draw


def test_a_domain_smaller_than_the_support_is_named():
    data = toy_set(per_domain=4)
    with pytest.raises(ValueError, match=r"'d0' has 4"):
        DomainBatches(data, "train", support_size=3, query_size=2, groups_per_batch=1, seed=0)
    with pytest.raises(ValueError, match=r"test-time adaptation on a first batch of 5.*'d5' has 4"):
        DomainSequence(data, "test", batch_size=5)


def test_overlapping_splits_are_refused_naming_the_domain():
    data = toy_set()
    with pytest.raises(ValueError, match="domain 'd1' is in both the train and the test split"):
        DomainSet(data.source, data.domains, data.domain_names, data.class_names,
                  {"train": [0, 1], "val": [4], "test": [1]})


def test_sequential_evaluation_walks_each_domain_in_order_and_flags_its_first_batch():
    data = toy_set(domains=6, per_domain=10)
    seq = DomainSequence(data, "test", batch_size=4)
    batches = [seq[i] for i in range(len(seq))]
    assert [len(b["y"]) for b in batches] == [4, 4, 2]  # never spans two domains; the last is shorter
    assert [bool(b["first"]) for b in batches] == [True, False, False]
    assert [bool(b["last"]) for b in batches] == [False, False, True]
    assert torch.equal(torch.cat([b["y"] for b in batches]), data.source.labels[data.items("test", 5)])


def test_ranks_take_whole_domains_and_pad_to_equal_counts():
    data = toy_set(domains=7, per_domain=4)
    data.split_domains["test"] = [2, 3, 4, 5, 6]
    data.split_domains["train"] = [0, 1]
    data.split_domains["val"] = []
    data._items.clear()
    seq = DomainSequence(data, "test", batch_size=4)
    ranks = [list(DomainStripeSampler(seq, r, 2)) for r in range(2)]
    assert ranks[0] == [0, 2, 4] and ranks[1] == [1, 3, 0]  # rank 1 repeats domain 0: dropped by report_items
    assert set(ranks[0]) | set(ranks[1]) == set(range(5))


def test_random_super_domains_are_a_seeded_near_equal_partition():
    ids = [3, 5, 7, 9, 11, 13, 15]
    part = super_domains(ids, 3, seed=0)
    assert sorted(part) == ids
    assert sorted(np.bincount(list(part.values())).tolist()) == [2, 2, 3]
    assert part == super_domains(ids, 3, seed=0) and part != super_domains(ids, 3, seed=1)
    with pytest.raises(ValueError, match="1 <= n <= 7"):
        super_domains(ids, 8, seed=0)


def test_kmeans_super_domains_group_similar_domains():
    feats = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 10.0], [10.1, 10.0], [0.0, 0.2], [9.9, 10.0]])
    part = super_domains(range(6), 2, seed=0, method="kmeans", features=feats)
    assert part[0] == part[1] == part[4] and part[2] == part[3] == part[5] and part[0] != part[2]


def test_data_module_splits_and_experts(tmp_path):
    class Toy(DomainDataModule):
        def build_domains(self):
            return toy_set(domains=8, per_domain=10)

    dm = Toy(support_size=3, query_size=2, super_domains=3, train_batches=4, eval_batch_size=5)
    dm.setup("fit")
    assert sorted(sum(dm.experts_of(), [])) == [f"d{i}" for i in range(6)]
    assert len(list(dm.loader("train"))) == 4
    assert [int(b["domain"]) for b in dm.loader("test")] == [7, 7]
    with pytest.raises(ValueError, match="super_domains=7 but only 6 training domains"):
        Toy(support_size=3, query_size=2, super_domains=7).setup("fit")


# -- Glyphs-Domains pieces ------------------------------------------------------------------------------------------
def test_face_split_rule_and_styles():
    assert [face_split(i) for i in range(8)] == ["train", "val", "train", "test", "train", "train", "test", "train"]
    glyph = np.zeros((40, 20), dtype=np.uint8)
    glyph[5:35, 8:12] = 255
    rng = np.random.default_rng(0)
    contrast = render_styled(glyph, "contrast", 28, rng)
    assert contrast.min() >= 80 and contrast.max() <= 170  # ink and background squeezed into 80..169
    plain = render_styled(glyph, "plain", 28, np.random.default_rng(0))
    bold = render_styled(glyph, "bold", 28, np.random.default_rng(0))
    assert (bold > 128).sum() > (plain > 128).sum()
    impulse = np.zeros((9, 9), dtype=np.float32)
    impulse[4, 4] = 1.0
    assert gaussian_blur(impulse, 1.0).sum() == pytest.approx(1.0, abs=1e-6)


# -- readers --------------------------------------------------------------------------------------------------------
def write_png(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


def test_domainbed_folder_reads_leave_one_domain_out(tmp_path):
    for d in ("art", "photo", "sketch"):
        for c in ("dog", "cat"):
            for i in range(4):
                write_png(tmp_path / d / c / f"{i}.png")
    dm = DomainBedFolderDataModule(str(tmp_path), test_domains=["sketch"], image_size=8, support_size=2, query_size=1,
                         super_domains=2, holdout_fraction=0.25)
    dm.setup()
    assert [dm.data.domain_names[d] for d in dm.data.domain_ids("test")] == ["sketch"]
    assert dm.eval_split("val") == "in_domain"  # no val_domains: select on the training domains' held-out items
    assert dm.summary()["in_domain"] == {"domains": 2, "items": 4}
    assert dm.data.class_names == {0: "cat", 1: "dog"}


def test_domainbed_domains_that_do_not_share_classes_name_the_classes(tmp_path):
    for d, classes in (("art", ("dog", "cat")), ("photo", ("dog", "horse"))):
        for c in classes:
            write_png(tmp_path / d / c / "0.png")
    dm = DomainBedFolderDataModule(str(tmp_path), test_domains=["photo"], image_size=8)
    with pytest.raises(ValueError, match=r"class 'cat' is missing from \['photo'\]; class 'horse' is missing "
                                         r"from \['art'\]"):
        dm.setup()


def test_wilds_metadata_reads_splits_and_domains(tmp_path):
    rows = ["split,location_remapped,y,filename"]
    for i, (split, loc) in enumerate([("train", 0)] * 4 + [("train", 1)] * 4 + [("val", 2)] * 3 + [("test", 3)] * 3
                                     + [("id_test", 0)] * 2):
        rows.append(f"{split},{loc},{i % 2},img{i}.png")
        write_png(tmp_path / "train" / f"img{i}.png")
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    dm = WildsMetadataDataModule(str(tmp_path), dataset="iwildcam", image_size=8, support_size=2, query_size=1,
                       super_domains=2)
    dm.setup()
    names = dm.data.domain_names
    assert [names[d] for d in dm.data.domain_ids("train")] == ["location_remapped=0", "location_remapped=1"]
    assert [names[d] for d in dm.data.domain_ids("test")] == ["location_remapped=3"]
    assert dm.summary()["in_domain"]["items"] == 2 and dm.summary()["train"]["items"] == 8


def test_wilds_metadata_without_the_domain_column_names_it(tmp_path):
    (tmp_path / "metadata.csv").write_text("split,y,filename\ntrain,0,a.png\n")
    dm = WildsMetadataDataModule(str(tmp_path), dataset="iwildcam", image_size=8)
    with pytest.raises(ValueError, match=r"has no column 'location_remapped' \(the domain_column of iwildcam\)"):
        dm.setup()
