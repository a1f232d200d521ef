"""Classify your own images with a pretrained ProtoNet, from a few labelled examples of each class.

    python docs/examples/pretrained_inference.py [WORK_DIR]

The "own images" here are drawn on the spot from the fonts that ship with matplotlib (five characters of Glyphs' test
split, which the model never saw in training or model selection; two fonts each as labelled support images, three
other fonts as queries), so the example runs anywhere; with real images, point the two folders at yours. Nothing is downloaded: the registry checkpoint is
read from checkpoints/ and verified against its sha256.

It goes the way `zoo predict` does, without a Trainer: the checkpoint's DataModule (datamodules.images.Glyphs, named
in the entry's config) decodes the support and query folders exactly as its training images were decoded (28x28
grayscale, inverted so strokes are bright), and the model classifies the queries against the support prototypes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib
import torch
from PIL import Image, ImageDraw, ImageFont

import zoo
from datamodules.images import Glyphs

FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
CLASSES = {"infinity": "∞", "omega": "Ω", "yen": "¥", "section": "§", "psi": "Ψ"}  # Glyphs test-split classes
SUPPORT_FONTS = ["DejaVuSans.ttf", "DejaVuSerif.ttf"]
QUERY_FONTS = ["DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif-Italic.ttf"]


def draw(char: str, font: str, path: Path, size: int = 64) -> None:
    """One character, black on white paper, centred: what a scan or a photo of a printed symbol looks like."""
    img = Image.new("L", (size, size), 255)
    face = ImageFont.truetype(str(FONTS / font), int(size * 0.7))
    ImageDraw.Draw(img).text((size / 2, size / 2), char, fill=0, font=face, anchor="mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def make_folders(work: Path) -> tuple[Path, Path, dict[str, str]]:
    """support/<class>/<font>.png and queries/<class>-<font>.png; returns the two folders and each query's truth."""
    truth = {}
    for name, char in CLASSES.items():
        for font in SUPPORT_FONTS:
            draw(char, font, work / "support" / name / f"{Path(font).stem}.png")
        for font in QUERY_FONTS:
            query = work / "queries" / f"{name}-{Path(font).stem}.png"
            draw(char, font, query)
            truth[query.name] = name
    return work / "support", work / "queries", truth


def main(work: Path) -> float:
    support_dir, query_dir, truth = make_folders(work)

    model = zoo.load_pretrained("protonet-conv4-glyphs-5w1s")  # sha256-verified safetensors, eval mode
    data = Glyphs(predict_support_dir=str(support_dir), predict_query_dir=str(query_dir))
    with torch.inference_mode():
        for episode in data.predict_dataloader():  # one episode: every support image, every query
            out = model.predict_step(episode, 0)
            names = episode.extras["class_names"]
            predicted = {Path(f).name: names[int(p)] for f, p in zip(episode.extras["query_files"], out["pred"])}
            confidence = out["probs"].max(-1).values

    for (file, label), p in zip(predicted.items(), confidence.tolist()):
        mark = "ok" if label == truth[file] else f"WRONG (is {truth[file]})"
        print(f"{file:<32} -> {label:<8} p={p:.2f}  {mark}")
    accuracy = sum(predicted[f] == truth[f] for f in truth) / len(truth)
    print(f"accuracy: {sum(predicted[f] == truth[f] for f in truth)}/{len(truth)} queries ({100 * accuracy:.0f}%)")
    return accuracy


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
