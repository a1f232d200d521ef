"""Tests of the Glyphs benchmark (datamodules/images/glyphs/).

Fast tests build a small variant (a few dozen code points from five scripts and four symbol blocks, 16x16 images)
into pytest's temporary directories; one slow test builds the full default benchmark and checks its counts, its
face coverage against the font files, and that no look-alike pair straddles two splits.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch

from safefiles import MANIFEST_FILE
from datamodules.images import glyphs as G
from datamodules.images.glyphs import build as glyphs_build
from datamodules.images.glyphs import fonts as glyphs_fonts
from datamodules.images.glyphs import render as glyphs_render
from datamodules.episodes import SPLITS, Episode

LATIN = "ABEHKMOPTXacegkopsxyGRQ"
GREEK = "ΑΒΕΗΚΜΟΡΤΧαορπλΩδψΣφ"
CYRILLIC = "АВЕНКМОРТХаеорсхужДБЯшѕ"
ARMENIAN = "ԱԲԳԴԵԶաբ"
SYMBOLS = "←↑→↓↔─│┼╬∀∃∈∑0123()⁰¹²\u212a\u2126"  # ... KELVIN SIGN, OHM SIGN
SMALL = sorted({ord(c) for c in LATIN + GREEK + CYRILLIC + ARMENIAN + SYMBOLS})
SMALL_ARGS = {"image_size": 16, "instances_per_class": 20, "seed": 0, "codepoints": SMALL, "workers": 1}
# For the cache mechanics a handful of classes and instances is enough (and each build takes well under a second).
TINY = sorted(ord(c) for c in "AaBΑБж→┼")
TINY_ARGS = {"image_size": 12, "instances_per_class": 4, "seed": 0, "codepoints": TINY, "workers": 1}

# Cross-script look-alikes that must be detected and kept inside one split.
TRIPLES = ["AΑА", "BΒВ", "EΕЕ", "HΗН", "KΚК\u212a", "MΜМ", "OΟО", "PΡР", "TΤТ", "XΧХ", "oοо", "eе", "sѕ"]


def _cp(name: str) -> int:
    """``"U+0041"`` -> 0x41."""
    return int(name.removeprefix("U+"), 16)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> G.GlyphsData:
    root = tmp_path_factory.mktemp("glyphs_small")
    return G.load_glyphs(root, **SMALL_ARGS)


# ---------------------------------------------------------------------------------------------------------------
# pure pieces
# ---------------------------------------------------------------------------------------------------------------
def test_union_find_and_groups_by_hand():
    # rendering pairs 0x41~0x391 and 0x391~0x410 chain into one group; NFKC joins KELVIN SIGN to K; the name key
    # joins LATIN and GREEK SMALL LETTER ALPHA; 0x42 stays alone.
    cps = [0x41, 0x42, 0x4B, 0x251, 0x391, 0x3B1, 0x410, 0x212A]
    groups = G.lookalike_groups(cps, [(0x41, 0x391), (0x391, 0x410), (0x42, 0x999)])
    assert groups == [[0x41, 0x391, 0x410], [0x4B, 0x212A], [0x251, 0x3B1]]


def test_confusable_key_only_for_shape_names():
    assert G.confusable_key(0x0251) == G.confusable_key(0x03B1) == "SMALL LETTER ALPHA"
    assert G.confusable_key(0x018F) == G.confusable_key(0x04D8)  # LATIN / CYRILLIC CAPITAL LETTER SCHWA
    # CYRILLIC CAPITAL LETTER I looks like a mirrored N: one-letter sound names are not keys.
    assert G.confusable_key(0x0418) is None and G.confusable_key(0x0049) is None
    assert G.confusable_key(0x2192) is None  # RIGHTWARDS ARROW


def test_resolve_lookalikes_majority_then_lowest_code_point():
    split_of = {0x41: "test", 0x391: "train", 0x410: "val", 0x42: "train", 0x392: "train",
                0x43: "val", 0x3F9: "train", 0x421: "train"}
    groups = [[0x41, 0x391, 0x410], [0x42, 0x392], [0x43, 0x3F9, 0x421]]
    dropped = G.resolve_lookalikes(split_of, groups)
    # one each: the tie goes to Latin A's split; two of three in train: Latin C goes; B's group is in one split
    assert set(dropped) == {0x391, 0x410, 0x43}
    assert "U+0041" in dropped[0x391] and "(test)" in dropped[0x391]


def test_duplicate_classes_by_hand():
    a = np.zeros((8, 8), np.uint8)
    a[2:6, 3:5] = 255
    b = a.copy()
    b[2, 3] = 250  # the same picture, up to a rasterisation wobble
    c = np.zeros((8, 8), np.uint8)
    c[2:6, 2:6] = 255  # a different picture
    exact = {"F1": {1: a, 2: b, 3: c, 4: a}, "F2": {1: a, 2: b, 3: c}}
    split_of = {1: "train", 2: "train", 3: "train", 4: "val"}
    dropped = G.duplicate_classes([[1, 2, 3, 4]], split_of, exact)
    # 2 duplicates 1 in the same split; 3 is another picture; 4 is identical but in another split (that is
    # resolve_lookalikes' business, not a duplicate)
    assert set(dropped) == {2} and "U+0001" in dropped[2]


def test_assign_alphabets_by_hand():
    # letters: 64 of 100 -> A alone fills train's 64; B (20) then goes to test (target 20), C (16) to val (16).
    sizes = {"A": 64, "B": 20, "C": 16, "s1": 10, "s2": 3, "s3": 2}
    kinds = {"A": "letters", "B": "letters", "C": "letters", "s1": "symbols", "s2": "symbols", "s3": "symbols"}
    order = {n: i for i, n in enumerate(sizes)}
    out = G.assign_alphabets(sizes, order, kinds)
    assert out == {"A": "train", "B": "test", "C": "val", "s1": "train", "s2": "test", "s3": "val"}


def test_lookalike_distance_by_hand():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[1.0, 0.0], [0.0, 1.0]])
    d = G.lookalike_distance(a, b)
    # ||a-b||^2 / (||a||^2 + ||b||^2): identical -> 0, disjoint -> 1, [1,1] vs [1,0] -> 1/3.
    np.testing.assert_allclose(d, [[0.0, 1.0], [1 / 3, 1 / 3]], atol=1e-6)


def test_morphology_matches_pillow_rank_filters():
    from PIL import Image, ImageFilter

    a = (np.random.default_rng(0).random((17, 23)) * 255).astype(np.uint8)
    for r in (1, 2):
        pad = np.pad(a, r)
        dil = np.asarray(Image.fromarray(pad).filter(ImageFilter.MaxFilter(2 * r + 1)))[r:-r, r:-r]
        ero = np.asarray(Image.fromarray(pad).filter(ImageFilter.MinFilter(2 * r + 1)))[r:-r, r:-r]
        np.testing.assert_array_equal(glyphs_render._morph(a.astype(np.float32), r, np.maximum), dil)
        np.testing.assert_array_equal(glyphs_render._morph(a.astype(np.float32), r, np.minimum), ero)


def test_cm_fonts_are_read_through_glyph_names():
    faces = {f.name: f for f in G.discover_faces()}
    cmr = faces["cmr10"]
    assert cmr.custom_encoding and not faces["DejaVuSans"].custom_encoding
    assert cmr.coverage[0x0393] == 0xA1  # GREEK CAPITAL LETTER GAMMA sits in TeX slot 0xA1
    assert 0x3E not in cmr.coverage or cmr.coverage[0x3E] != 0x3E  # slot 0x3E is questiondown, not '>'
    assert not any(name.startswith(("LastResort", "STIXSiz")) for name in faces)
    # TeX conventions the glyph names get wrong: cmti10's "dollar" slot draws a pound sign; \phi is stroked
    assert 0x24 not in faces["cmti10"].coverage and 0xA3 in faces["cmti10"].coverage
    assert faces["cmmi10"].coverage[0x03D5] != faces["cmmi10"].coverage[0x03C6]


def test_distort_is_deterministic_and_never_clips():
    face = next(f for f in G.discover_faces() if f.name == "DejaVuSans")
    glyph = G.render_clean(face.path, ord("W"))
    quiet = dict(G.DISTORTION, noise_sigma=[0.0, 0.0])
    for i in range(20):
        x = G.distort(glyph, 28, np.random.default_rng([0, i]), quiet)
        assert x.dtype == np.uint8 and x.shape == (28, 28)
        assert x.max() > 200
        border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
        assert border.max() == 0, "ink reached the border: the fit/translation clipping failed"
        ys, xs = np.nonzero(x > 32)
        assert abs(ys.mean() - 13.5) < 5 and abs(xs.mean() - 13.5) < 5
    a = G.distort(glyph, 28, G.class_rng(3, 87))
    b = G.distort(glyph, 28, G.class_rng(3, 87))
    c = G.distort(glyph, 28, G.class_rng(4, 87))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_lookalike_detection_on_known_pairs():
    faces = {f.name: f for f in G.discover_faces()}
    chars = sorted(set("".join(TRIPLES) + "EFecOQbdaɑ"))
    thumbs = {name: {} for name in G.REFERENCE_FACES}
    for name in G.REFERENCE_FACES:
        for ch in chars:
            if ord(ch) in faces[name].coverage:
                g = G.render_clean(faces[name].path, faces[name].coverage[ord(ch)])
                thumbs[name][ord(ch)] = G.lookalike_thumbnail(g)
    pairs = G.lookalike_pairs([ord(c) for c in chars], thumbs)
    groups = G.lookalike_groups([ord(c) for c in chars], pairs)
    group_of = {cp: i for i, g in enumerate(groups) for cp in g}
    for triple in TRIPLES:
        ids = {group_of.get(ord(c)) for c in triple}
        assert len(ids) == 1 and None not in ids, f"{triple} not detected as one look-alike group"
    for a, b in ["EF", "ec", "OQ", "bd", "aɑ", "oO"]:
        assert group_of.get(ord(a)) is None or group_of.get(ord(a)) != group_of.get(ord(b)), f"{a} ~ {b}?"


# ---------------------------------------------------------------------------------------------------------------
# a small build
# ---------------------------------------------------------------------------------------------------------------
def test_small_build_contents(small):
    m = small.manifest
    n = m["num_classes"]
    assert small.images.dtype == np.uint8 and small.images.shape == (n * 20, 1, 16, 16)
    assert np.array_equal(small.labels, np.repeat(np.arange(n), 20))
    assert m["builder_version"] == G.BUILDER_VERSION and m["params"]["codepoints"] == SMALL
    assert all(len(c["faces"]) >= 12 for c in m["classes"])
    assert {c["script"] for c in m["classes"]} >= {"Latin", "Greek", "Cyrillic", "Armenian", "Arrows"}
    # every instance is drawn from one of its class's faces and cycles through them
    for i, c in enumerate(m["classes"]):
        used = small.faces[small.labels == i]
        assert set(used.tolist()) <= set(c["faces"])
        assert len(set(used.tolist())) == min(20, len(c["faces"]))
    # ink everywhere, and instances of a class differ from each other
    assert (small.images.reshape(len(small.images), -1).max(1) > 150).all()
    per_class = small.images.reshape(n, 20, -1)
    assert all(len({x.tobytes() for x in per_class[i]}) == 20 for i in range(n))
    assert sorted(_cp(c) for c in (d["codepoint"] for d in m["dropped"])) == sorted(
        set(SMALL) - set(small.codepoints.tolist()))
    assert sha(small.directory / G.DATA_FILE) == m["data"]["sha256"]


def test_small_build_splits_and_lookalikes(small):
    m = small.manifest
    split_of = {_cp(c["codepoint"]): c["split"] for c in m["classes"]}
    assert set(split_of.values()) == set(SPLITS)
    # whole alphabets in one split
    alphabet_splits = {}
    for c in m["classes"]:
        alphabet_splits.setdefault(c["alphabet"], set()).add(c["split"])
    assert all(len(s) == 1 for s in alphabet_splits.values())
    # each known triple was detected as (part of) one group, and what is left of it sits in one split
    groups = [[_cp(c) for c in g] for g in m["lookalike_groups"]]
    group_of = {cp: i for i, g in enumerate(groups) for cp in g}
    dropped = {_cp(d["codepoint"]) for d in m["dropped"] if d["reason"].startswith("looks like")}
    qualified = set(split_of) | dropped  # drawn by >= 12 faces
    n_dropped = 0
    for triple in TRIPLES:
        cps = [ord(c) for c in triple if ord(c) in qualified]
        assert len({group_of.get(cp) for cp in cps}) == 1, triple
        kept = [cp for cp in cps if cp in split_of]
        assert kept and len({split_of[cp] for cp in kept}) == 1, triple
        n_dropped += sum(cp in dropped for cp in cps)
    assert n_dropped > 0, "the small build should put some look-alikes in different alphabets' splits"
    # the general property, checked independently of the builder's union-find: no pair of classes in different
    # splits looks alike in any reference face, shares an NFKC form, or a confusable name
    _assert_no_cross_split_lookalikes(split_of)


def _assert_no_cross_split_lookalikes(split_of: dict[int, str]) -> None:
    faces = {f.name: f for f in G.discover_faces()}
    cps = sorted(split_of)
    split_id = np.array([SPLITS.index(split_of[cp]) for cp in cps])
    cross = split_id[:, None] != split_id[None, :]
    for name in G.REFERENCE_FACES:
        face = faces[name]
        rows, have = [], []
        for i, cp in enumerate(cps):
            if cp in face.coverage and (g := G.render_clean(face.path, face.coverage[cp])) is not None:
                rows.append(G.lookalike_thumbnail(g).astype(np.float64).ravel() / 255.0)
                have.append(i)
        x = np.stack(rows)
        sq = (x * x).sum(1)
        d = (sq[:, None] + sq[None, :] - 2 * x @ x.T) / (sq[:, None] + sq[None, :])
        bad = np.argwhere((d < G.LOOKALIKE_THRESHOLD) & cross[np.ix_(have, have)])
        assert len(bad) == 0, f"{name}: " + ", ".join(
            f"{chr(cps[have[i]])}/{chr(cps[have[j]])}" for i, j in bad[:10])
    for a, b in itertools.combinations(cps, 2):
        if split_of[a] != split_of[b]:
            assert unicodedata.normalize("NFKC", chr(a)) != unicodedata.normalize("NFKC", chr(b)), (a, b)
            ka, kb = G.confusable_key(a), G.confusable_key(b)
            assert ka is None or ka != kb, (a, b)


def test_determinism_and_seed(tmp_path):
    one = G.build_glyphs(tmp_path / "one", **TINY_ARGS)
    two = G.build_glyphs(tmp_path / "two", **TINY_ARGS)
    assert (one / G.DATA_FILE).read_bytes() == (two / G.DATA_FILE).read_bytes()
    assert (one / MANIFEST_FILE).read_bytes() == (two / MANIFEST_FILE).read_bytes()
    other = G.build_glyphs(tmp_path / "one", **dict(TINY_ARGS, seed=1))
    assert other != one and sha(other / G.DATA_FILE) != sha(one / G.DATA_FILE)
    # the classes and splits do not depend on the seed, only the renderings do
    m0 = json.loads((one / MANIFEST_FILE).read_text())
    m1 = json.loads((other / MANIFEST_FILE).read_text())
    assert [(c["codepoint"], c["split"]) for c in m0["classes"]] == [(c["codepoint"], c["split"]) for c in m1["classes"]]


def test_staleness_triggers_rebuild(tmp_path, monkeypatch):
    root = tmp_path / "stale"
    d = G.build_glyphs(root, **TINY_ARGS)
    good = sha(d / G.DATA_FILE)
    reference = G.load_glyphs(root, **TINY_ARGS).images
    params = glyphs_build._params(12, 4, 0, G.MIN_FACES, TINY)
    assert G.stale_reason(d, params) is None

    # 1. a changed build parameter recorded in the manifest (as if the distortion table had changed)
    m = json.loads((d / MANIFEST_FILE).read_text())
    m["params"]["em_fraction"] = 0.5
    (d / MANIFEST_FILE).write_text(json.dumps(m))
    assert "params" in G.stale_reason(d, params)
    assert G.build_glyphs(root, **TINY_ARGS) == d and G.stale_reason(d, params) is None
    assert sha(d / G.DATA_FILE) == good

    # 2. corrupted data: detected by checksum, rebuilt to the same bytes; load_glyphs goes through the same check
    data = bytearray((d / G.DATA_FILE).read_bytes())
    data[-100] ^= 0xFF
    (d / G.DATA_FILE).write_bytes(bytes(data))
    assert "sha256" in G.stale_reason(d, params)
    loaded = G.load_glyphs(root, **TINY_ARGS)
    assert sha(d / G.DATA_FILE) == good and np.array_equal(loaded.images, reference)

    # 3. a new builder version
    monkeypatch.setattr(glyphs_build, "BUILDER_VERSION", glyphs_build.BUILDER_VERSION + 1)
    assert "builder version" in G.stale_reason(d, params)
    G.build_glyphs(root, **TINY_ARGS)
    assert json.loads((d / MANIFEST_FILE).read_text())["builder_version"] == glyphs_build.BUILDER_VERSION
    monkeypatch.undo()

    # 4. a changed font file
    fonts = G.font_checksums()
    fonts["DejaVuSans"] = "0" * 64
    assert "DejaVuSans" in G.stale_reason(G.build_glyphs(root, **TINY_ARGS), params, fonts)

    # 5. a different image size is a different cache directory, built on its own
    d8 = G.build_glyphs(root, **dict(TINY_ARGS, image_size=8))
    assert d8 != d and G.load_glyphs(root, **dict(TINY_ARGS, image_size=8)).images.shape[-1] == 8
    assert sha(d / G.DATA_FILE) == good


def test_interrupted_build_leaves_nothing_half_written(tmp_path, monkeypatch):
    root = tmp_path / "crash"

    def boom(out, *a, **k):
        (out / G.DATA_FILE).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(glyphs_build, "_write_build", boom)
    with pytest.raises(KeyboardInterrupt):
        G.build_glyphs(root, **TINY_ARGS)
    target = G.cache_dir(root, 12, 4, 0, codepoints=TINY)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.undo()
    good = G.build_glyphs(root, **TINY_ARGS)
    before = sha(good / G.DATA_FILE)
    monkeypatch.setattr(glyphs_build, "_write_build", boom)
    with pytest.raises(KeyboardInterrupt):
        G.build_glyphs(root, **TINY_ARGS, force=True)
    assert sha(good / G.DATA_FILE) == before  # the previous build is untouched
    assert G.stale_reason(good, glyphs_build._params(12, 4, 0, G.MIN_FACES, TINY)) is None


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        G.build_glyphs(tmp_path, image_size=4)
    with pytest.raises(ValueError, match="instances_per_class"):
        G.Glyphs(instances_per_class=0)
    with pytest.raises(ValueError, match="no code point"):
        G.build_glyphs(tmp_path, codepoints=[0x0E01], workers=1)  # THAI CHARACTER KO KAI: too few faces


# ---------------------------------------------------------------------------------------------------------------
# the DataModule
# ---------------------------------------------------------------------------------------------------------------
def test_datamodule_five_way_five_shot_fifteen_query(tmp_path_factory, small):
    dm = G.Glyphs(cache_dir=str(small.directory.parent.parent), image_size=16, n_way=5, k_shot=5, q_query=15,
                  train_episodes=3, val_episodes=2, test_episodes=2, seed=7, augment=True)
    dm._codepoints = SMALL
    dm.prepare_data()
    dm.setup("fit")
    ids = {s: set(dm.sources[s].labels.unique().tolist()) for s in SPLITS}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    for split in SPLITS:
        for label, name in dm.sources[split].class_names.items():
            cp = int(small.codepoints[label])
            assert name == f"U+{cp:04X} {unicodedata.name(chr(cp))}"
    assert "U+0041 LATIN CAPITAL LETTER A" in dm.sources["train"].class_names.values() or \
        "U+0041 LATIN CAPITAL LETTER A" in dm.sources["val"].class_names.values() or \
        "U+0041 LATIN CAPITAL LETTER A" in dm.sources["test"].class_names.values()
    for split in SPLITS:
        loader = dm.loader(split)
        episodes = list(loader)
        assert len(episodes) == dm.episodes[split]
        ep = episodes[0]
        assert isinstance(ep, Episode)
        assert ep.support_x.shape == (25, 1, 16, 16) and ep.query_x.shape == (75, 1, 16, 16)
        assert ep.support_x.dtype == torch.float32 and -1.01 <= float(ep.support_x.min()) < 0 < float(ep.support_x.max()) <= 1.01
        assert torch.equal(ep.support_y, torch.arange(5).repeat_interleave(5))
        assert torch.equal(ep.query_y, torch.arange(5).repeat_interleave(15))
        assert set(ep.classes.tolist()) <= ids[split]
    # evaluation episodes are a fixed set: drawing them again gives the same images
    a = next(iter(dm.loader("test")))
    b = next(iter(dm.loader("test")))
    assert torch.equal(a.query_x, b.query_x) and torch.equal(a.classes, b.classes)


def test_datamodule_arguments_are_explicit():
    import inspect

    params = inspect.signature(G.Glyphs.__init__).parameters
    for name in ["cache_dir", "image_size", "instances_per_class", "build_seed", "augment", "n_way", "k_shot", "q_query",
                 "train_n_way", "train_k_shot", "train_q_query", "train_episodes", "val_episodes", "test_episodes",
                 "seed", "num_workers"]:
        assert name in params and params[name].annotation is not inspect.Parameter.empty, name


# ---------------------------------------------------------------------------------------------------------------
# the full default build (shared with the rest of the suite through conftest's session fixture ``glyphs_data``,
# cached under $METAZOO_DATA; building it takes ~35-45 s on 2 cores, loading it ~1 s)
# ---------------------------------------------------------------------------------------------------------------
def _classes(data: G.GlyphsData) -> tuple[dict[int, str], dict[str, set[int]]]:
    split_of = {_cp(c["codepoint"]): c["split"] for c in data.manifest["classes"]}
    splits = {s: set(np.flatnonzero(data.class_split == i).tolist()) for i, s in enumerate(SPLITS)}
    return split_of, splits


def test_full_default_build(glyphs_data):
    full = glyphs_data
    m = full.manifest
    n = m["num_classes"]
    assert m["params"]["image_size"] == 28 and m["params"]["instances_per_class"] == 20 and m["params"]["seed"] == 0
    assert n >= 1500
    assert full.images.shape == (20 * n, 1, 28, 28) and full.images.dtype == np.uint8
    assert np.array_equal(full.labels, np.repeat(np.arange(n), 20))
    nf = np.array([len(c["faces"]) for c in m["classes"]])
    assert nf.min() >= 12
    per_script = {}
    for c in m["classes"]:
        per_script[c["script"]] = per_script.get(c["script"], 0) + 1
    assert sum(k >= 40 for k in per_script.values()) >= 6, per_script
    assert {"Latin", "Greek", "Cyrillic", "Armenian", "Georgian"} <= set(per_script)
    split_of, splits = _classes(full)
    assert sum(len(v) for v in splits.values()) == n and all(splits.values())
    frac = {s: len(v) / n for s, v in splits.items()}
    assert 0.55 < frac["train"] < 0.72 and 0.10 < frac["val"] < 0.22 and 0.14 < frac["test"] < 0.26, frac
    alphabet_splits = {}
    for c in m["classes"]:
        alphabet_splits.setdefault(c["alphabet"], set()).add(c["split"])
    assert all(len(s) == 1 for s in alphabet_splits.values())

    group_of = {_cp(cp): i for i, g in enumerate(m["lookalike_groups"]) for cp in g}
    qualified = set(split_of) | {_cp(d["codepoint"]) for d in m["dropped"]
                                 if d["reason"].startswith("looks like")}
    for triple in TRIPLES:
        assert len({group_of.get(ord(ch)) for ch in triple if ord(ch) in qualified}) == 1, triple
        kept = [ord(ch) for ch in triple if ord(ch) in split_of]
        assert kept and len({split_of[cp] for cp in kept}) == 1, triple
    for g in m["lookalike_groups"]:
        assert len({split_of[_cp(cp)] for cp in g if _cp(cp) in split_of}) <= 1, g

    # the DataModule over the full build: 5-way 5-shot 15-query episodes from every split
    dm = G.Glyphs(cache_dir=str(full.directory.parent.parent), k_shot=5, q_query=15, val_episodes=3, test_episodes=3)
    dm.setup("fit")
    assert {s: set(dm.sources[s].labels.unique().tolist()) for s in SPLITS} == splits
    for split in SPLITS:
        ep = next(iter(dm.loader(split)))
        assert ep.support_x.shape == (25, 1, 28, 28) and ep.query_x.shape == (75, 1, 28, 28)
        assert set(ep.classes.tolist()) <= splits[split]


@pytest.mark.slow
def test_full_build_faces_and_lookalikes_independently(glyphs_data):
    """Re-derives, without the builder's code paths, that every listed face contains its glyph and that no two
    classes in different splits look alike (about 15 s: it re-renders every class in the reference faces)."""
    from fontTools import agl
    from fontTools.ttLib import TTFont

    m = glyphs_data.manifest
    fonts = m["fonts"]
    tables = {}
    for f in fonts:
        font = TTFont(str(G.font_dir() / f["file"]))
        cmap = font.getBestCmap()
        if f["custom_encoding"]:
            fixes = glyphs_fonts._TEX_GLYPH_FIXES.get(f["name"], {})
            by_cp = {}
            for code in sorted(cmap):
                glyph = cmap[code]
                u = chr(fixes[glyph]) if glyph in fixes else agl.toUnicode(glyph)
                if len(u) == 1:
                    by_cp.setdefault(ord(u), glyph)
        else:
            by_cp = cmap
        tables[f["name"]] = (by_cp, font["glyf"])
    for c in m["classes"]:
        cp = _cp(c["codepoint"])
        for fid in c["faces"]:
            by_cp, glyf = tables[fonts[fid]["name"]]
            assert cp in by_cp, (c["codepoint"], fonts[fid]["name"])
            assert glyf[by_cp[cp]].numberOfContours != 0, (c["codepoint"], fonts[fid]["name"])
    split_of, _ = _classes(glyphs_data)
    _assert_no_cross_split_lookalikes(split_of)
