"""data.resize=pad: the whole picture letterboxed into the model's shape, and boxes, points and
masks still on their objects; predictions mapped back through the letterbox."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fishbear.core.geometry import PAD_MASK, letterbox
from fishbear.data.transforms import build_transforms
from fishbear.kinds import get_kind


def _wide_scene():
    """A 40 x 100 picture, black, with a white square at x 70-90, y 10-30 (at the right edge
    region a centre crop would cut away)."""
    image = np.zeros((40, 100, 3), np.uint8)
    image[10:30, 70:90] = 255
    return image


def _meta(kind: str, classes: list[str]):
    from fishbear.kinds.meta import ModelMeta

    return ModelMeta(kind=kind, classes=tuple(classes), image_size=(64, 64), mean=(0.0,) * 3, std=(1.0,) * 3,
                     model_cfg={}, settings=get_kind(kind).settings_type(), resize="pad")


def test_pad_keeps_the_whole_picture_and_moves_boxes_points_and_masks_with_it():
    image = _wide_scene()
    boxes = build_transforms("valid", [64, 64], kind=get_kind("detect"), resize="pad")
    out = boxes(image=image, bboxes=[[70, 10, 90, 30]], labels=[0])
    x0, y0, x1, y1 = out["bboxes"][0]
    shown = out["image"].permute(1, 2, 0).numpy().mean(-1)
    assert shown.shape == (64, 64)
    # scaled by 0.64 into the width, letterboxed 19.2 px above and below
    assert (x0, y0, x1, y1) == pytest.approx((44.8, 32.0 - 12.8 + 6.4, 57.6, 32.0 - 12.8 + 19.2), abs=0.6)
    inside = shown[int(y0) + 1:int(y1) - 1, int(x0) + 1:int(x1) - 1]
    assert inside.mean() > shown.mean() + 1.0  # the box still holds the white square
    assert shown[:15].std() < 1e-6  # the letterbox band is one flat fill

    points = build_transforms("valid", [64, 64], kind=get_kind("points"), resize="pad")
    out = points(image=image, keypoints=[(80.0, 20.0)])
    px, py = out["keypoints"][0][:2]
    assert shown[int(py), int(px)] > shown.mean() + 1.0

    mask = np.zeros((40, 100), np.uint8)
    mask[10:30, 70:90] = 1
    masks = build_transforms("valid", [64, 64], kind=get_kind("segment"), resize="pad")
    out = masks(image=image, mask=mask)
    moved = np.asarray(out["mask"])
    assert (moved == PAD_MASK).sum() > 0 and set(np.unique(moved)) == {0, 1, PAD_MASK}
    white = out["image"].permute(1, 2, 0).numpy().mean(-1) > shown.mean() + 1.0
    assert ((moved == 1) == white)[moved != PAD_MASK].mean() > 0.97
    target = get_kind("segment").target(None, {"mask": moved}, 2)
    assert (target == -100).sum() == (moved == PAD_MASK).sum()  # letterbox pixels are not scored


def test_train_time_pad_fits_the_same_way():
    image = _wide_scene()
    from fishbear.data.transforms import Augment

    train = build_transforms("train", [64, 64], augment=Augment(hflip=False, rotate=0, lighting=0, saturation=0, blur=0),
                             kind=get_kind("detect"), resize="pad")
    out = train(image=image, bboxes=[[70, 10, 90, 30]], labels=[0])
    assert out["image"].shape[-2:] == (64, 64) and len(out["bboxes"]) == 1


def test_predictions_are_mapped_back_through_the_letterbox():
    factor, left, top = letterbox("pad", [64, 64], 40, 100)
    assert (factor, left, top) == pytest.approx((0.64, 0.0, 19.2))
    found = [{"boxes": torch.tensor([[44.8, 25.6, 57.6, 38.4]]), "scores": torch.tensor([0.9]),
              "labels": torch.tensor([0])}]
    result = get_kind("detect").interpret(found, [(40, 100)], _meta("detect", ["square"]))[0]
    assert result["boxes"][0]["box"] == pytest.approx([70, 10, 90, 30], abs=0.1)
    # a point at the model's (51.2, 32): (x / 32 - 1, y / 32 - 1) in [-1, 1] -> the square's centre (80, 20)
    point = get_kind("points").interpret(torch.tensor([[51.2 / 32 - 1, 32 / 32 - 1]]), [(40, 100)],
                                         _meta("points", ["centre"]))[0]
    assert point["points"]["centre"] == pytest.approx((80.0, 20.0), abs=0.1)
    scores = torch.zeros(2, 64, 64)
    scores[0] = 1.0
    scores[1, 25:38, 45:58] = 2.0  # the square, in model pixels
    mask = get_kind("segment").interpret([scores], [(40, 100)], _meta("segment", ["bg", "square"]))[0]["mask"]
    assert mask.shape == (40, 100) and mask[20, 80] == 1 and mask[20, 20] == 0


def test_an_unknown_fit_is_refused():
    from fishbear.core.errors import ConfigError

    with pytest.raises(ConfigError, match="data.resize='letterbox'"):
        build_transforms("valid", 32, resize="letterbox")


def test_a_padded_run_predicts_with_the_same_fit(tmp_path):
    from fishbear.engine.inference import Predictor
    from fishbear.train import train
    from tests.conftest import TINY, compose_train

    report = train(compose_train([*TINY, "data.resize=pad", "logger=none"], tmp_path))
    assert report["metrics"]
    predictor = Predictor.from_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    assert predictor.meta.resize == "pad"
    padded = predictor.transform(image=np.zeros((20, 60, 3), np.uint8))["image"]
    assert tuple(padded.shape[-2:]) == (32, 32)
