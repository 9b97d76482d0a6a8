"""Segmentation: learns masks above calling every pixel background, writes masks, needs a dense
model, trains in bf16; augmentation moves masks and points with the image."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fishbear.core.errors import ConfigError
from fishbear.train import train

from ..conftest import compose_train
from . import QUIET, assert_intervals, read_rows


@pytest.mark.slow  # a learning benchmark (every kind keeps a fast smoke test: its docs command, tests/commands/test_cli.py)
def test_segmentation_beats_the_majority_class_and_writes_masks(tmp_path):
    from fishbear.predict import main as predict

    run = tmp_path / "run"
    # 240 images of 32 px (about 200 to train on), 12 epochs: about 15 s on 2 CPU cores
    report = train(compose_train(["data=shapes_masks", "model=unet", "model.encoder=convnet", "data.source.train=60",
                                  "data.source.valid=10", "data.source.test=10", "data.source.image_size=32",
                                  "data.image_size=32", "data.batch_size=16", "trainer.max_epochs=12", "trainer.lr=3e-3",
                                  "callbacks.batch_grid.val_images=0", *QUIET], run))
    section = report["segment"]
    assert_intervals(report, "segment")
    per_class = {c["class"]: c for c in section["per_class"]}
    pixels = np.array([c["pixels"] for c in section["per_class"]])
    majority = pixels.max() / pixels.sum()
    # Calling every pixel background scores the background share as accuracy and as background
    # IoU, and 0 IoU on every shape. Pixel accuracy alone hides what was learnt (a model that finds
    # every shape but names its kind at random gains only a quarter of the shape pixels), so the
    # test asks for each skill apart. Measured with seeds 42, 1, 2 on torch 2.14.1 and 2.15.0 alike:
    # background IoU 0.96-0.97 against 0.871 (a quarter of the errors), accuracy 0.909-0.911,
    # shapes' mean IoU 0.135-0.195.
    assert 1 - per_class["background"]["iou"] < 0.5 * (1 - majority), (per_class["background"], majority)
    assert section["pixel_accuracy"] > majority + 0.02, (section["pixel_accuracy"], majority)
    shapes_iou = np.mean([c["iou"] for name, c in per_class.items() if name != "background"])
    assert shapes_iou > 0.05, per_class
    assert section["pixel_accuracy"] == pytest.approx(report["metrics"]["test/acc"], abs=1e-5)
    assert section["void"] == "void" and "void" not in [c["class"] for c in section["per_class"]]
    assert "| circle |" in (run / "report.md").read_text() and (run / "segmentation_samples.png").is_file()

    images = run.parent / "to_predict"
    images.mkdir()
    Image.new("RGB", (40, 24), (90, 120, 150)).save(images / "wide.png")
    predict([f"ckpt={run / 'checkpoints' / 'best.ckpt'}", f"input={images}"])
    mask = Image.open(images / "predicted_masks" / "wide_P.png")
    assert mask.mode == "P" and mask.size == (40, 24)  # the input's own size
    (row,) = read_rows(images / "predictions.csv")
    assert row["mask"].endswith("wide_P.png")
    assert sum(float(row[f"share_{c}"]) for c in report["classes"]) == pytest.approx(1, abs=1e-3)


def test_a_segmentation_dataset_needs_a_dense_model(tmp_path):
    with pytest.raises(ConfigError, match=r"needs a model with dense output.*Use model=unet"):
        train(compose_train(["data=shapes_masks", "data.source.train=2", "data.source.valid=1", "data.source.test=1",
                             "data.source.image_size=32", "data.image_size=32", *QUIET], tmp_path))


def test_bf16_mixed_precision_trains_a_unet(tmp_path):
    report = train(compose_train(["data=shapes_masks", "model=unet", "model.encoder=convnet", "data.source.train=4",
                                  "data.source.valid=1", "data.source.test=2", "data.source.image_size=32",
                                  "data.image_size=32", "data.batch_size=8", "trainer.max_epochs=1",
                                  "trainer.precision=bf16-mixed", *QUIET], tmp_path))
    assert report["config"]["precision"] == "bf16-mixed" and np.isfinite(report["metrics"]["test/loss"])
    assert json.loads((tmp_path / "report.json").read_text())["metrics"] == report["metrics"]


# -- augmentation moves the targets with the image ----------------------------------------------
def test_flips_crops_and_rotations_move_masks_and_points_with_the_image():
    from fishbear.data.catalog import Sample
    from fishbear.data.transforms import Augment, build_transforms
    from fishbear.kinds import get_kind

    augment = Augment(hflip=True, vflip=True, crop_scale=(0.6, 1.0), rotate=20, lighting=0, saturation=0, blur=0)
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    image[8:14, 40:46] = 255  # a white square whose centre is the point, and whose pixels are class 1
    mask = (image[..., 0] > 0).astype(np.uint8)
    segment = build_transforms("train", 32, augment, get_kind("segment"))
    points = build_transforms("train", 32, augment, get_kind("points"))
    segment.set_random_seed(0)  # the same 20 draws on every run: a draw's verdict must not depend on test order
    points.set_random_seed(0)
    sample = Sample(image=None, target=np.array([[43.0, 11.0]]))
    for _ in range(20):
        out = segment(image=image, mask=mask)
        bright = out["image"][0] > 127   # uint8 pictures: normalised later, on the device
        assert (bright == torch.as_tensor(out["mask"] == 1)).float().mean() > 0.97
        out = points(image=image, **get_kind("points").transform_inputs(sample, image, 1))
        target = get_kind("points").target(sample, out, 1)
        x, y = ((target.numpy() + 1) / 2 * 32)
        ys, xs = np.nonzero(out["image"][0].numpy() > 127)
        # the square may be cropped away or cut by the border; when it is wholly there, the point is at its centre
        if len(xs) and 4 <= x <= 28 and 4 <= y <= 28:
            assert abs(xs.mean() + 0.5 - x) < 2.5 and abs(ys.mean() + 0.5 - y) < 2.5
