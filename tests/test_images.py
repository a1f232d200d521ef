"""Image dataset readers and the `zoo predict` folders, on tiny image trees written to tmp_path."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.episodes import SPLITS, Episode
from datamodules.images.cub import CUBDataModule
from datamodules.images.image_folder import ImageFolderDataModule
from datamodules.images.mini_imagenet import MiniImageNetDataModule
from datamodules.images.omniglot import OmniglotDataModule
from datamodules.images.source import ImageReadError, ImageSource, decode_image, interleaved_split, read_split_csv
from datamodules.images.stanford import StanfordCarsDataModule, StanfordDogsDataModule
from datamodules.images.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform

EPISODE = {"n_way": 2, "k_shot": 1, "q_query": 2, "train_episodes": 3, "val_episodes": 2, "test_episodes": 2}


# ---------------------------------------------------------------------------------------------------------- fixtures
def write_noise(path: Path, seed: int, size: tuple[int, int] = (8, 8), mode: str = "RGB") -> np.ndarray:
    """A random image (distinct per seed) saved losslessly; returns its pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    arr = rng.integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(arr, mode=mode).save(path)
    return arr


def write_solid(path: Path, color, size: tuple[int, int] = (8, 8), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def make_class_tree(directory: Path, classes: dict[str, int], seed: int = 0, ext: str = ".png") -> None:
    """directory/<class>/<i>.png with ``classes[class]`` random images each."""
    for c, (name, n) in enumerate(classes.items()):
        for i in range(n):
            write_noise(directory / name / f"{i}{ext}", seed=seed * 1000 + c * 100 + i)


def make_image_folder(root: Path, per_class: int = 4) -> Path:
    for s, split in enumerate(SPLITS):
        make_class_tree(root / split, {f"{split}_c{j}": per_class for j in range(3)}, seed=s)
    return root


def split_class_names(dm) -> dict[str, set[str]]:
    """Class names per split, straight from the reader (setup() would also check the episode setting)."""
    dm.sources = dm.sources or dm.build_sources()
    return {s: {dm.sources[s].class_names[int(c)] for c in dm.sources[s].labels.unique()} for s in SPLITS}


def assert_disjoint(dm) -> None:
    ids = [set(dm.sources[s].labels.tolist()) for s in SPLITS]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


# ------------------------------------------------------------------------------------------------------- decoding
def test_decode_gray_and_rgb_shapes_and_values(tmp_path):
    path = tmp_path / "solid.png"
    write_solid(path, (200, 100, 50), size=(10, 6))
    rgb = decode_image(path, channels=3, size=4)
    gray = decode_image(path, channels=1, size=4)
    assert rgb.shape == (3, 4, 4) and rgb.dtype == torch.uint8
    assert gray.shape == (1, 4, 4) and gray.dtype == torch.uint8
    # A constant image stays constant under bicubic resizing; ITU-R 601 luma 0.299*200 + 0.587*100 + 0.114*50 = 124.2
    assert rgb[:, 0, 0].tolist() == [200, 100, 50] and (rgb == rgb[:, :1, :1]).all()
    assert (gray == 124).all()


def test_decode_rotation_bbox_invert_alpha(tmp_path):
    arr = np.zeros((8, 8), np.uint8)
    arr[:, 4:] = 255          # right half white
    arr[0, 0] = 128           # marks the top-left corner
    path = tmp_path / "half.png"
    Image.fromarray(arr, mode="L").save(path)
    assert torch.equal(decode_image(path, 1, 8)[0], torch.from_numpy(arr))
    # 90 degrees counter-clockwise (PIL's rotate direction) is numpy's rot90 with k=1.
    for deg, k in ((90, 1), (180, 2), (270, 3)):
        assert torch.equal(decode_image(path, 1, 8, rotation=deg)[0], torch.from_numpy(np.rot90(arr, k).copy()))
    # The box (x=4, y=0, w=4, h=8) is the white half: resized back to 8x8 it is all white.
    assert (decode_image(path, 1, 8, bbox=(4, 0, 4, 8)) == 255).all()
    assert torch.equal(decode_image(path, 1, 8, invert=True)[0], torch.from_numpy(255 - arr))
    with pytest.raises(ValueError, match="multiple of 90"):
        decode_image(path, 1, 8, rotation=45)
    with pytest.raises(ValueError, match="empty"):
        decode_image(path, 1, 8, bbox=(20, 20, 4, 4))
    # A transparent pixel is composited onto white, not left black.
    rgba = tmp_path / "alpha.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(rgba)
    assert (decode_image(rgba, 3, 4) == 255).all()


@pytest.mark.parametrize("content", [b"this is not an image", "truncated"])
@pytest.mark.parametrize("cache", [False, True])
def test_unreadable_image_names_the_file(tmp_path, content, cache):
    files = [tmp_path / f"{i}.jpg" for i in range(10)]
    for i, f in enumerate(files):
        write_noise(f, seed=i)
    bad = files[7]
    if content == "truncated":
        data = bad.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        bad.write_bytes(content)
    src = ImageSource(files, [0] * 10, {0: "a"}, image_size=8, cache=cache, num_threads=2)
    with pytest.raises(ImageReadError, match=str(bad)):
        src.load_many(torch.arange(10))
    with pytest.raises(ImageReadError, match=str(bad)):
        src.load(7)


def test_cache_gives_the_same_tensors_as_decoding(tmp_path):
    files = [tmp_path / f"c{i // 4}" / f"{i}.png" for i in range(12)]
    for i, f in enumerate(files):
        write_noise(f, seed=i, size=(9, 7))
    labels = [i // 4 for i in range(12)]
    transform = ImageTransform(IMAGENET_MEAN, IMAGENET_STD)
    plain = ImageSource(files, labels, None, image_size=6, resize=7, transform=transform, cache=False)
    cached = ImageSource(files, labels, None, image_size=6, resize=7, transform=transform, cache=True, num_threads=2)
    assert not cached.is_cached  # lazy: nothing decoded at construction
    idx = torch.tensor([0, 5, 11, 3, 3, 8, 1, 2, 9])
    a, b = plain.load_many(idx), cached.load_many(idx)
    assert cached.is_cached and cached._cached.data.shape == (12, 3, 6, 6)
    assert a.dtype == torch.float32 and a.shape == (9, 3, 6, 6)
    assert torch.equal(a, b)
    for i in (0, 11):
        assert plain.load(i).dtype == torch.uint8 and torch.equal(plain.load(i), cached.load(i))
    # The cached source survives pickling (spawned data-loader workers) with its cache.
    clone = pickle.loads(pickle.dumps(cached))
    assert clone.is_cached and torch.equal(clone.load_many(idx), b)


# ---------------------------------------------------------------------------------------------------- ImageFolder
def test_image_folder_splits_and_episodes(tmp_path):
    root = make_image_folder(tmp_path / "data")
    dm = ImageFolderDataModule(str(root), image_size=8, **EPISODE)
    names = split_class_names(dm)
    assert names == {s: {f"{s}_c{j}" for j in range(3)} for s in SPLITS}
    assert_disjoint(dm)
    assert all(dm.sources[s].cache for s in SPLITS)  # tiny: cached by default
    episode = next(iter(dm.train_dataloader()))
    assert isinstance(episode, Episode)
    assert episode.support_x.shape == (2, 3, 8, 8) and episode.support_x.dtype == torch.float32
    assert episode.query_x.shape == (4, 3, 8, 8)
    assert episode.support_y.tolist() == [0, 1] and episode.query_y.tolist() == [0, 0, 1, 1]
    assert set(episode.classes.tolist()) <= set(dm.sources["train"].labels.tolist())
    # Same seed, same episodes, cached or not; grayscale gives one channel.
    other = ImageFolderDataModule(str(root), image_size=8, cache=False, **EPISODE)
    for x, y in zip(dm.test_dataloader(), other.test_dataloader()):
        assert torch.equal(x.query_x, y.query_x) and torch.equal(x.classes, y.classes)
    gray = ImageFolderDataModule(str(root), image_size=6, channels=1, **EPISODE)
    assert next(iter(gray.val_dataloader())).support_x.shape == (2, 1, 6, 6)


def test_image_folder_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*\n.*root/\{train,val,test\}/<class>"):
        ImageFolderDataModule(str(tmp_path / "missing")).setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no train, val, test.*\n.*root/\{train,val,test\}"):
        ImageFolderDataModule(str(tmp_path / "empty")).setup()
    root = make_image_folder(tmp_path / "data")
    (root / "val" / "val_c9").mkdir()
    with pytest.raises(FileNotFoundError, match="val_c9 holds no images"):
        ImageFolderDataModule(str(root)).setup()
    (root / "val" / "val_c9").rmdir()
    # A class with fewer than K + Q images: the episode check runs in setup and names the class.
    for f in list((root / "val" / "val_c1").iterdir())[1:]:
        f.unlink()
    with pytest.raises(ValueError, match=r"\[val\].*need 3 items per class.*'val_c1' has 1"):
        ImageFolderDataModule(str(root), **EPISODE).setup("fit")
    # The test split alone is fine: testing neither checks nor loads the broken validation split.
    dm = ImageFolderDataModule(str(root), image_size=8, **EPISODE)
    dm.setup("test")
    assert next(iter(dm.test_dataloader())).query_x.shape == (4, 3, 8, 8)
    make_class_tree(root / "test", {"train_c0": 3})
    with pytest.raises(ValueError, match="'train_c0' is in both"):
        ImageFolderDataModule(str(root)).setup("test")


def test_workers_share_one_cache(tmp_path):
    dm = ImageFolderDataModule(str(make_image_folder(tmp_path / "data")), image_size=8, num_workers=1, **EPISODE)
    loader = dm.val_dataloader()
    assert dm.sources["val"].is_cached  # decoded in this process, before the worker forks
    assert len(list(loader)) == 2


# ------------------------------------------------------------------------------------------------------ Omniglot
def make_omniglot(root: Path) -> Path:
    """3 background alphabets and 2 evaluation alphabets, 2 characters each, 3 drawings per character."""
    seed = 0
    for part, alphabets in (("images_background", ["Beta", "Alpha", "Gamma"]), ("images_evaluation", ["Eps", "Del"])):
        for alphabet in alphabets:
            for char in ("character01", "character02"):
                for i in range(3):
                    seed += 1
                    arr = (np.random.default_rng(seed).random((8, 8)) > 0.5).astype(np.uint8) * 255
                    path = root / part / alphabet / char / f"{seed:04d}_{i:02d}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(arr, mode="L").convert("1").save(path)
    return root


def test_omniglot_alphabet_split(tmp_path):
    root = make_omniglot(tmp_path / "omniglot")
    dm = OmniglotDataModule(str(root), val_alphabets=1, image_size=8, **EPISODE)
    names = split_class_names(dm)
    assert names == {"train": {"Alpha/character01", "Alpha/character02", "Beta/character01", "Beta/character02"},
                     "val": {"Gamma/character01", "Gamma/character02"},
                     "test": {"Del/character01", "Del/character02", "Eps/character01", "Eps/character02"}}
    assert_disjoint(dm)
    src = dm.sources["train"]
    assert src.channels == 1 and len(src) == 12
    # Inverted by default: white strokes (255 in the file's black) ...
    raw = np.asarray(Image.open(src.files[0]).convert("L"))
    assert torch.equal(src.load(0)[0], torch.from_numpy(255 - raw))
    episode = next(iter(dm.train_dataloader()))
    assert episode.support_x.shape == (2, 1, 8, 8) and episode.query_x.shape == (4, 1, 8, 8)


def test_omniglot_rotations_are_new_classes(tmp_path):
    root = make_omniglot(tmp_path / "omniglot")
    dm = OmniglotDataModule(str(root), rotations=True, val_alphabets=1, image_size=8, **EPISODE)
    names = split_class_names(dm)
    assert len(names["train"]) == 16 and len(names["val"]) == 8 and len(names["test"]) == 16
    assert "Alpha/character01/rot090" in names["train"]
    assert_disjoint(dm)
    src = dm.sources["train"]
    by_rot = {src.class_names[int(label)].rsplit("/", 1)[1]: i for i, label in enumerate(src.labels)
              if src.files[i] == src.files[0]}
    assert set(by_rot) == {"rot000", "rot090", "rot180", "rot270"}
    upright = src.load(by_rot["rot000"])[0].numpy()
    assert np.array_equal(src.load(by_rot["rot090"])[0].numpy(), np.rot90(upright, 1))
    assert np.array_equal(src.load(by_rot["rot270"])[0].numpy(), np.rot90(upright, 3))


def test_omniglot_split_dir_and_errors(tmp_path):
    root = make_omniglot(tmp_path / "omniglot")
    splits = tmp_path / "vinyals"
    splits.mkdir()
    (splits / "train.txt").write_text("Alpha/character01/rot000\nAlpha/character01/rot090\nDel/character02\n")
    (splits / "val.txt").write_text("Beta/character01/rot180\n")
    (splits / "test.txt").write_text("Eps/character02/rot000\n\n")
    dm = OmniglotDataModule(str(root), split_dir=str(splits), image_size=8, n_way=1, k_shot=1, q_query=2)
    assert split_class_names(dm) == {"train": {"Alpha/character01/rot000", "Alpha/character01/rot090",
                                               "Del/character02"},
                                     "val": {"Beta/character01/rot180"}, "test": {"Eps/character02/rot000"}}
    (splits / "val.txt").write_text("Beta/character01/rot180\nNope/character01\n")
    with pytest.raises(FileNotFoundError, match=r"val.txt:2: character 'Nope/character01' is in neither"):
        OmniglotDataModule(str(root), split_dir=str(splits)).setup()
    (splits / "val.txt").write_text("Beta/character01/rot45\n")
    with pytest.raises(ValueError, match=r"val.txt:1: expected"):
        OmniglotDataModule(str(root), split_dir=str(splits)).setup()
    (tmp_path / "bare").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no images_background, images_evaluation.*\n.*<alphabet>"):
        OmniglotDataModule(str(tmp_path / "bare")).setup()


# -------------------------------------------------------------------------------------------------- miniImageNet
def write_csv(path: Path, rows: list[tuple[str, str]], header: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["filename,label"] if header else []) + [f"{f},{c}" for f, c in rows]
    path.write_text("\n".join(lines) + "\n")


def make_mini(root: Path) -> Path:
    wnids = {"train": ["n01", "n02", "n03"], "val": ["n04", "n05"], "test": ["n06", "n07"]}
    for split, classes in wnids.items():
        rows = []
        for c in classes:
            for i in range(3):
                name = f"{c}{i:08d}.jpg"
                # One class stored as images/<wnid>/<file>, as some copies do.
                write_noise(root / "images" / (c if c == "n05" else "") / name, seed=int(c[1:]) * 10 + i)
                rows.append((name, c))
        write_csv(root / f"{split}.csv", rows)
    return root


def test_mini_imagenet_csv_split(tmp_path):
    root = make_mini(tmp_path / "mini")
    dm = MiniImageNetDataModule(str(root), image_size=8, **EPISODE)
    assert split_class_names(dm) == {"train": {"n01", "n02", "n03"}, "val": {"n04", "n05"}, "test": {"n06", "n07"}}
    assert_disjoint(dm)
    assert next(iter(dm.val_dataloader())).support_x.shape == (2, 3, 8, 8)


def test_split_csv_errors_name_file_and_line(tmp_path):
    root = make_mini(tmp_path / "mini")
    good = (root / "val.csv").read_text()
    (root / "val.csv").write_text(good + "missing.jpg,n04\n")
    with pytest.raises(FileNotFoundError, match=r"val.csv:8: image 'missing.jpg' not found"):
        MiniImageNetDataModule(str(root)).setup()
    (root / "val.csv").write_text(good + "a.jpg,n04,extra\n")
    with pytest.raises(ValueError, match=r"val.csv:8: expected two fields"):
        MiniImageNetDataModule(str(root)).setup()
    (root / "val.csv").write_text(good + "n0100000000.jpg,n01\n")
    with pytest.raises(ValueError, match=r"val.csv:8: class 'n01' is also in train.csv"):
        MiniImageNetDataModule(str(root)).setup()
    (root / "val.csv").write_text("filename,label\n")
    with pytest.raises(ValueError, match="has no rows"):
        MiniImageNetDataModule(str(root)).setup()
    (root / "val.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no val.csv.*\n.*filename,label"):
        MiniImageNetDataModule(str(root)).setup()
    # Header optional; quoted labels with commas survive.
    plain = tmp_path / "plain.csv"
    plain.write_text('a.jpg,"Ram C/V, 2012"\n')
    assert read_split_csv(plain) == [(1, "a.jpg", "Ram C/V, 2012")]


# ----------------------------------------------------------------------------------------------------------- CUB
def make_cub(root: Path, n_classes: int = 8, per_class: int = 3) -> Path:
    """CUB's metadata files; each image is gray with a red box at (2, 2, 4, 4) listed in bounding_boxes.txt."""
    images, labels, boxes, classes = [], [], [], []
    image_id = 0
    for c in range(1, n_classes + 1):
        folder = f"{c:03d}.Bird_{c}"
        classes.append(f"{c} {folder}")
        for i in range(per_class):
            image_id += 1
            rel = f"{folder}/Bird_{c}_{i:04d}.png"
            img = Image.new("RGB", (8, 8), (128, 128, 128))
            img.paste((255, 0, 0), (2, 2, 6, 6))
            (root / "images" / folder).mkdir(parents=True, exist_ok=True)
            img.save(root / "images" / rel)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c}")
            boxes.append(f"{image_id} 2.0 2.0 4.0 4.0")
    for name, lines in (("images.txt", images), ("image_class_labels.txt", labels),
                        ("bounding_boxes.txt", boxes), ("classes.txt", classes)):
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def test_cub_standard_split_and_bbox(tmp_path):
    root = make_cub(tmp_path / "CUB_200_2011")
    dm = CUBDataModule(str(tmp_path), image_size=8, **EPISODE)  # the parent of CUB_200_2011/ also works
    dm.setup()
    ids = {s: sorted(set(dm.sources[s].labels.tolist())) for s in SPLITS}
    # Chen et al.: train i % 2 == 0, val i % 4 == 1, test i % 4 == 3 (0-based classes.txt order).
    assert ids == {"train": [0, 2, 4, 6], "val": [1, 5], "test": [3, 7]}
    assert dm.sources["val"].class_names[5] == "006.Bird_6"
    whole = dm.sources["train"].load(0)
    assert whole[:, 0, 0].tolist() == [128, 128, 128]
    cropped = CUBDataModule(str(root), crop_to_bbox=True, image_size=8)
    split_class_names(cropped)
    assert cropped.sources["train"].load(0).tolist() == torch.tensor([255, 0, 0]).view(3, 1, 1).expand(3, 8, 8).tolist()
    assert next(iter(dm.test_dataloader())).query_x.shape == (4, 3, 8, 8)
    (root / "bounding_boxes.txt").write_text("1 2 2 4\n")
    with pytest.raises(ValueError, match=r"bounding_boxes.txt:1: expected"):
        CUBDataModule(str(root), crop_to_bbox=True).setup()


def test_cub_split_dir_overrides(tmp_path):
    root = make_cub(tmp_path / "CUB_200_2011")
    splits = tmp_path / "split"
    plan = {"train": [1, 2, 3, 4], "val": [5, 6], "test": [7, 8]}
    for split, classes in plan.items():
        write_csv(splits / f"{split}.csv", [(f"{c:03d}.Bird_{c}/Bird_{c}_{i:04d}.png", f"{c:03d}.Bird_{c}")
                                            for c in classes for i in range(3)])
    dm = CUBDataModule(str(root), split_dir=str(splits), crop_to_bbox=True, image_size=8)
    names = split_class_names(dm)
    assert names["val"] == {"005.Bird_5", "006.Bird_6"} and len(names["train"]) == 4
    assert (dm.sources["test"].load(0)[0] == 255).all()  # cropped to the red box


# -------------------------------------------------------------------------------- Stanford Dogs and Stanford Cars
def test_interleaved_split_by_hand():
    # By hand, 6 * deficit = count * (i + 1) - 6 * assigned for (train, val, test), largest wins, ties to train:
    # a: (3, 1, 2) train; b: (0, 2, 4) test; c: (3, 3, 0) train; d: (0, 4, 2) val; e: (3, -1, 4) test;
    # f: (6, 0, 0) train.
    assert interleaved_split("fedcba", (3, 1, 2)) == {"train": ["a", "c", "f"], "val": ["d"], "test": ["b", "e"]}
    with pytest.raises(ValueError, match="3/1/2 classes.*found 5"):
        interleaved_split("abcde", (3, 1, 2), "Dogs")


def test_stanford_dogs_split(tmp_path):
    root = tmp_path / "dogs"
    for c in range(120):
        write_solid(root / "Images" / f"n02{c:06d}-Breed_{c}" / f"n02{c:06d}_1.jpg", (c, c, c), size=(4, 4))
    dm = StanfordDogsDataModule(str(root), image_size=4)
    names = split_class_names(dm)
    assert [len(names[s]) for s in SPLITS] == [70, 20, 30]
    assert_disjoint(dm)
    assert names == split_class_names(StanfordDogsDataModule(str(root)))  # deterministic
    # Spread, not blocks: each split has classes among the first and the last 20 in sorted order.
    order = sorted(set().union(*names.values()))
    for s in SPLITS:
        assert names[s] & set(order[:20]) and names[s] & set(order[-20:])
    with pytest.raises(FileNotFoundError, match=r"Images does not exist.*\n.*root/Images/<wnid>-<breed>"):
        StanfordDogsDataModule(str(tmp_path)).setup()


def car_names() -> list[str]:
    return [f"Make{c:03d} Model Sedan 2012" for c in range(195)] + ["Ram C/V Cargo Van Minivan 2012"]


def make_cars_devkit(root: Path) -> Path:
    from scipy.io import savemat

    names = car_names()
    (root / "devkit").mkdir(parents=True)
    savemat(root / "devkit" / "cars_meta.mat", {"class_names": np.array([names], dtype=object)})
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    for half, mat in (("train", root / "devkit" / "cars_train_annos.mat"),
                      ("test", root / "cars_test_annos_withlabels.mat")):
        annos = np.zeros((1, len(names)), dtype=[(f, "O") for f in fields])
        for c in range(len(names)):
            fname = f"{c + 1:05d}.jpg"
            img = Image.new("RGB", (8, 8), (0, 0, 255))
            img.paste((0, 255, 0), (1, 1, 5, 5))  # the box, corners inclusive: x 1..4, y 1..4
            (root / f"cars_{half}").mkdir(exist_ok=True)
            img.save(root / f"cars_{half}" / fname, quality=100, subsampling=0)
            annos[0, c] = (np.array([[1]]), np.array([[1]]), np.array([[4]]), np.array([[4]]),
                           np.array([[c + 1]]), np.array([fname]))
        savemat(mat, {"annotations": annos})
    return root


def test_stanford_cars_both_layouts_agree(tmp_path):
    folder_root = tmp_path / "cars_folders"
    for half in ("train", "test"):
        for c, name in enumerate(car_names()):
            write_solid(folder_root / "car_data" / half / name.replace("/", "-") / f"{half}_{c}.jpg", (c, 0, 0),
                        size=(4, 4))
    folders = StanfordCarsDataModule(str(folder_root), image_size=4)
    devkit = StanfordCarsDataModule(str(make_cars_devkit(tmp_path / "cars_devkit")), image_size=4)
    names = split_class_names(folders)
    assert [len(names[s]) for s in SPLITS] == [130, 17, 49]
    assert names == split_class_names(devkit)
    assert_disjoint(folders)
    assert len(folders.sources["train"]) == 260 and len(devkit.sources["train"]) == 260  # both halves pooled
    cropped = StanfordCarsDataModule(str(tmp_path / "cars_devkit"), crop_to_bbox=True, image_size=4)
    split_class_names(cropped)
    pixel = cropped.sources["val"].load(0)[:, 2, 2].tolist()
    assert pixel[1] > 200 and pixel[2] < 60  # inside the green box, not the blue background
    with pytest.raises(ValueError, match="crop_to_bbox needs the devkit layout"):
        StanfordCarsDataModule(str(folder_root), crop_to_bbox=True).setup()
    with pytest.raises(FileNotFoundError, match=r"neither layout.*cars_meta.mat.*\n.*car_data/\{train,test\}"):
        StanfordCarsDataModule(str(tmp_path)).setup()


# ------------------------------------------------------------------------------------------------- zoo predict
def make_predict_folders(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    support = tmp_path / "support"
    make_class_tree(support, {"b_cat": 2, "a_dog": 3})
    query = tmp_path / "query"
    query.mkdir()
    same = np.asarray(Image.open(support / "b_cat" / "1.png"))
    Image.fromarray(same).save(query / "x_copy_of_cat.png")
    for i in range(3):
        write_noise(query / f"q{i}.jpg", seed=99 + i)
    (query / "notes.txt").write_text("not an image")
    return support, query, same


def test_predict_episode_from_folders(tmp_path):
    support, query, _ = make_predict_folders(tmp_path)
    # The training data need not exist on the machine that predicts.
    dm = ImageFolderDataModule(str(tmp_path / "no_such_dataset"), image_size=8, predict_support_dir=str(support),
                     predict_query_dir=str(query))
    dm.setup("predict")
    episodes = list(dm.predict_dataloader())
    assert len(episodes) == 1
    ep = episodes[0]
    assert ep.support_x.shape == (5, 3, 8, 8) and ep.support_x.dtype == torch.float32
    assert ep.support_y.tolist() == [0, 0, 0, 1, 1]  # a_dog (3 images) then b_cat (2): unequal shots are fine
    assert ep.query_x.shape == (4, 3, 8, 8) and ep.query_y.tolist() == [-1, -1, -1, -1]
    assert ep.extras["class_names"] == ["a_dog", "b_cat"] and ep.classes.tolist() == [0, 1]
    assert [Path(f).name for f in ep.extras["query_files"]] == ["q0.jpg", "q1.jpg", "q2.jpg", "x_copy_of_cat.png"]
    assert torch.equal(ep.query_x[3], ep.support_x[4])  # the copied cat image is the cat's 2nd support image
    chunked = ImageFolderDataModule("unused", image_size=8, predict_support_dir=str(support), predict_query_dir=str(query),
                          predict_query_chunk=3)
    parts = list(chunked.predict_dataloader())
    assert [len(p.query_y) for p in parts] == [3, 1]
    assert torch.equal(torch.cat([p.query_x for p in parts]), ep.query_x)


def test_predict_uses_the_training_pixel_pipeline(tmp_path):
    # Omniglot trains on inverted grayscale at 28x28; prediction must see the user's images the same way.
    write_solid(tmp_path / "s" / "white" / "a.png", (255, 255, 255), size=(40, 30))
    write_solid(tmp_path / "s" / "black" / "a.png", (0, 0, 0), size=(40, 30))
    write_solid(tmp_path / "q" / "white_query.jpg", (255, 255, 255), size=(50, 50))
    dm = OmniglotDataModule("unused", predict_support_dir=str(tmp_path / "s"), predict_query_dir=str(tmp_path / "q"))
    (ep,) = list(dm.predict_dataloader())
    assert ep.support_x.shape == (2, 1, 28, 28) and ep.extras["class_names"] == ["black", "white"]
    # Inverted then normalised with mean 0.5, std 0.5: white paper -> 0 -> -1, black ink -> 255 -> +1.
    assert (ep.support_x[0] == 1).all() and (ep.support_x[1] == -1).all() and (ep.query_x == -1).all()


def test_predict_through_lightning(tmp_path):
    """`zoo predict` path: Trainer.predict with the datamodule, a nearest-prototype model on raw pixels."""
    import lightning.pytorch as pl

    class NearestPrototype(pl.LightningModule):
        def predict_step(self, ep, batch_idx):
            protos = torch.stack([ep.support_x[ep.support_y == c].mean(0) for c in ep.classes.tolist()])
            pred = torch.cdist(ep.query_x.flatten(1), protos.flatten(1)).argmin(1)
            return {f: ep.extras["class_names"][c] for f, c in zip(ep.extras["query_files"], pred.tolist())}

    support, query, _ = make_predict_folders(tmp_path)
    # Make the cat class one image, so its prototype is exactly the copied query.
    (support / "b_cat" / "0.png").unlink()
    dm = ImageFolderDataModule(str(tmp_path / "not_here"), image_size=8, predict_support_dir=str(support),
                     predict_query_dir=str(query))
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)
    (out,) = trainer.predict(NearestPrototype(), datamodule=dm)
    assert len(out) == 4 and out[str(query / "x_copy_of_cat.png")] == "b_cat"


def test_predict_bad_folders(tmp_path):
    support, query, _ = make_predict_folders(tmp_path)

    def predict(s, q):
        return ImageFolderDataModule("unused", predict_support_dir=s, predict_query_dir=q).predict_dataloader()

    with pytest.raises(ValueError, match=r"needs both predict_support_dir and predict_query_dir.*\n.*<class name>"):
        predict(str(support), None)
    with pytest.raises(FileNotFoundError, match=r"predict_support_dir: directory .*nowhere does not exist.*\n.*"
                                                r"predict_support_dir/<class name>"):
        predict(str(tmp_path / "nowhere"), str(query))
    with pytest.raises(FileNotFoundError, match=r"holds no class folders"):
        predict(str(query), str(query))
    with pytest.raises(FileNotFoundError, match=r"predict_query_dir: .*empty_q holds no images"):
        (tmp_path / "empty_q").mkdir()
        predict(str(support), str(tmp_path / "empty_q"))
    write_noise(support / "stray.png", seed=5)
    with pytest.raises(ValueError, match=r"images outside any class folder \(stray.png\)"):
        predict(str(support), str(query))


# ----------------------------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("cls", [ImageFolderDataModule, OmniglotDataModule, MiniImageNetDataModule, CUBDataModule, StanfordDogsDataModule, StanfordCarsDataModule])
def test_cli_sees_every_argument(cls):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(cls, "data")
    cfg = parser.parse_args(["--data.root", "/data", "--data.n_way", "3", "--data.cache", "false",
                             "--data.predict_query_dir", "q"])
    assert cfg.data.n_way == 3 and cfg.data.cache is False and cfg.data.predict_query_dir == "q"
    assert {"image_size", "channels", "mean", "augment", "seed", "num_workers"} <= set(vars(cfg.data))
    dm = cls(**vars(cfg.data))
    assert dm.n_way == 3 and dm.root == "/data"
