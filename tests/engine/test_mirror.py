"""Test-time augmentation by mirroring: whatever the network, the merged answer on a mirrored
picture is the merged answer on the picture, mirrored (classes and tags: the same; masks, a point
and boxes: mirrored), and it is the mean of the two views' probabilities (boxes: their weighted
fusion); what a mirror cannot undo is refused in one line; predict and evaluate take tta=true."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from fishbear.core.errors import ConfigError
from fishbear.engine.mirror import MirrorAveraged
from fishbear.kinds import get_kind
from tests.conftest import TINY, compose_train


def _net(outputs: int, dense: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    if dense:
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, outputs, 1))
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(8 * 12 * 16, outputs))


PICTURES = torch.randn(4, 3, 12, 16)


@pytest.mark.parametrize(("kind", "net", "mirror_answer"), [
    ("classify", _net(3), lambda y: y),
    ("multilabel", _net(5), lambda y: y),
    ("regress", _net(2), lambda y: y),
    ("segment", _net(4, dense=True), lambda y: y.flip(-1)),
    ("points", _net(2), lambda y: y * torch.tensor([-1.0, 1.0])),
])
def test_the_merged_answer_on_a_mirrored_picture_is_the_answer_mirrored(kind, net, mirror_answer):
    kind = get_kind(kind)
    merged = MirrorAveraged(net, kind, SimpleNamespace(classes=("a",))).eval()
    with torch.no_grad():
        on_picture = kind.predictions(merged(PICTURES))
        on_mirror = kind.predictions(merged(PICTURES.flip(-1)))
    assert torch.allclose(on_mirror, mirror_answer(on_picture), atol=1e-5)


def test_classes_merge_as_the_mean_of_the_two_views_probabilities():
    kind, net = get_kind("classify"), _net(3)
    with torch.no_grad():
        mean = (net(PICTURES).softmax(1) + net(PICTURES.flip(-1)).softmax(1)) / 2
        merged = MirrorAveraged(net, kind, SimpleNamespace(classes=("a",)))(PICTURES).softmax(1)
    assert torch.allclose(merged, mean, atol=1e-6)


def test_what_a_mirror_cannot_undo_is_refused():
    with pytest.raises(ConfigError, match="a mirrored left one is a right one"):
        MirrorAveraged(_net(4), get_kind("points"), SimpleNamespace(classes=("left_eye", "right_eye")))


def test_a_detectors_merged_boxes_on_a_mirrored_picture_are_its_boxes_mirrored():
    from fishbear.models.detection import faster_rcnn_on

    torch.manual_seed(0)
    net = faster_rcnn_on(2, "convnet", fpn_channels=16, head_width=32, proposals=50).eval()
    merged = MirrorAveraged(net, get_kind("detect"), SimpleNamespace(classes=("a", "b")))
    pictures = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        on_picture, on_mirror = merged(pictures), merged(pictures.flip(-1))
        single = net(pictures)
    for a, b, one in zip(on_picture, on_mirror, single):
        assert len(a["boxes"]) > 0 and len(a["boxes"]) <= 2 * len(one["boxes"])
        mirrored = get_kind("detect").unmirror([b], 80)[0]
        order = mirrored["scores"].argsort(descending=True)
        assert torch.allclose(a["scores"], mirrored["scores"][order], atol=1e-5)
        assert torch.allclose(a["boxes"], mirrored["boxes"][order], atol=1e-3)
        assert torch.equal(a["labels"], mirrored["labels"][order])


def test_box_fusion_averages_what_both_views_found_and_halves_what_one_found():
    from fishbear.kinds.detect.fusion import fuse_boxes

    boxes = torch.tensor([[10.0, 10, 50, 50], [12, 10, 52, 50],  # one object, both views (0.9, 0.6)
                          [100, 100, 140, 140],  # one view only
                          [11, 10, 51, 50]])  # where the first is, but another class
    boxes_out, scores, labels = fuse_boxes(boxes, torch.tensor([0.9, 0.6, 0.8, 0.7]), torch.tensor([0, 0, 0, 1]), views=2)
    assert labels.tolist() == [0, 0, 1] and torch.allclose(scores, torch.tensor([0.75, 0.4, 0.35]))
    assert torch.allclose(boxes_out[0], torch.tensor([10.8, 10, 50.8, 50]))  # weighted 0.9 : 0.6
    assert torch.allclose(boxes_out[1], boxes[2]) and torch.allclose(boxes_out[2], boxes[3])
    empty = fuse_boxes(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), views=2)
    assert [len(t) for t in empty] == [0, 0, 0]


def test_predict_and_evaluate_take_tta(trained_run, tmp_path):
    from fishbear.engine.inference import Predictor
    from fishbear.evaluate import evaluate

    run_dir, _ = trained_run
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    plain, mirrored = Predictor.from_checkpoint(ckpt), Predictor.from_checkpoint(ckpt, tta=True)
    image = torch.randint(0, 255, (32, 40, 3), dtype=torch.uint8).numpy()
    both = plain.predict_batch([image, image[:, ::-1].copy()])
    merged = mirrored.predict_batch([image])[0]
    for name, p in merged["probabilities"].items():
        assert p == pytest.approx((both[0]["probabilities"][name] + both[1]["probabilities"][name]) / 2, abs=1e-5)
    cfg = compose_train([f"ckpt={ckpt}", "tta=true", *[o for o in TINY if o.startswith("data.")]], tmp_path,
                        config_name="evaluate")
    report = evaluate(cfg)
    assert 0.0 <= report["metrics"]["test/acc"] <= 1.0
    assert json.loads((tmp_path / "report.json").read_text())["tta"] is True
