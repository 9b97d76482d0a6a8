"""Detection: Faster R-CNN in layer groups, COCO weights through torchvision's cache, boxes moved
by augmentation and batched per image, a detector that learns shapes' boxes, reports them, and
predicts boxes (CSV, drawn pictures, VOC XML loaded back) and sorts video frames by them."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision

from fishbear.core.errors import ConfigError
from fishbear.data.boxes import Boxes
from fishbear.data.catalog import Sample
from fishbear.models.detection import faster_rcnn, faster_rcnn_on
from fishbear.models.torchvision_bodies import WeightsUnavailableError
from fishbear.train import train

from ..conftest import compose_train, requires_shared, write_video
from . import assert_intervals, read_rows

SMALL = ["model=fasterrcnn_small", "model.fpn_channels=32", "model.rois_per_image=32", "model.proposals=100",
         "model.head_width=128"]
QUIET = ["data.num_workers=0", "trainer.num_sanity_val_steps=0", "logger=none", "trainer.enable_progress_bar=false"]
STAGES = ["stem", "stage1", "stage2", "stage3", "stage4"]


def _targets(n: int) -> list[dict[str, torch.Tensor]]:
    box = {"boxes": torch.tensor([[8.0, 8.0, 40.0, 36.0]]), "labels": torch.tensor([1])}
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    return [box if i % 2 == 0 else empty for i in range(n)]


@pytest.mark.parametrize("build", [
    lambda: faster_rcnn_on(2, "convnet", fpn_channels=16, head_width=32),
    lambda: faster_rcnn(2, "fasterrcnn_mobilenet_v3_large_fpn"),
], ids=["fpn_on_convnet", "torchvision_mobilenet_v3"])
def test_layer_groups_name_every_parameter_once(build):
    net = build()
    groups = net.layer_groups()
    assert list(groups) == [*STAGES, "fpn", "rpn", "roi_heads"]
    assert net.body_groups() == STAGES
    grouped = [id(p) for g in groups.values() for p in g.parameters()]
    assert len(grouped) == len(set(grouped)) and set(grouped) == {id(p) for p in net.parameters()}
    assert net.model.roi_heads.box_predictor.cls_score.out_features == 3  # two classes + background


def test_frozen_backbone_does_not_move_and_rates_are_per_group():
    from fishbear.training.optim import OptimSettings, build_optimizer

    torch.manual_seed(0)
    net = faster_rcnn_on(2, "convnet", fpn_channels=16, head_width=32, rois_per_image=16, proposals=50)
    frozen = net.freeze(train_bn=False)
    assert frozen == STAGES
    optimizer = build_optimizer(net, OptimSettings(lr=1e-2, lr_div=100, optimizer="sgd"))
    rates = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert list(rates) == [*STAGES, "fpn", "rpn", "roi_heads"]
    assert rates["stem"] == pytest.approx(1e-4) and rates["roi_heads"] == pytest.approx(1e-2)
    assert all(a < b for a, b in zip(list(rates.values()), list(rates.values())[1:]))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    net.hold_frozen_bn()
    losses = net(torch.rand(4, 3, 64, 64), _targets(4))
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    optimizer.step()
    after = net.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert not {k for k in moved if k.startswith("model.backbone.body.")}  # weights and BN statistics alike
    assert any(k.startswith("model.roi_heads.box_predictor.") for k in moved)
    net.eval()
    (out,) = net(torch.rand(1, 3, 64, 64))
    assert set(out) == {"boxes", "scores", "labels"} and out["boxes"].shape[1] == 4
    assert out["labels"].numel() == 0 or int(out["labels"].min()) >= 0  # fishbear's indices, no background


def test_coco_weights_come_through_torchvisions_cache_or_a_clear_error(torch_home, monkeypatch):
    arch = "fasterrcnn_mobilenet_v3_large_fpn"
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    filename = weights.url.rsplit("/", 1)[-1]

    def no_network(url, dst, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsUnavailableError) as err:
        faster_rcnn(1, arch, pretrained=True)
    assert filename in str(err.value) and str(torch_home) in str(err.value) and "model.pretrained=false" in str(err.value)

    torch.manual_seed(5)  # a locally made COCO-shaped state dict under torchvision's file name
    reference = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=91)
    torch.save(reference.state_dict(), torch_home / filename)
    net = faster_rcnn(1, arch, pretrained=True)
    assert torch.equal(net.model.backbone.body["0"][0].weight, reference.backbone.body["0"][0].weight)
    assert torch.equal(net.model.rpn.head.conv[0][0].weight, reference.rpn.head.conv[0][0].weight)
    assert net.model.roi_heads.box_predictor.cls_score.out_features == 2  # the new predictor: fish + background
    assert net.pretrained_cfg.weights == str(weights)
    assert all(p.requires_grad for p in net.parameters())  # fishbear's fine-tuning decides what is frozen


def test_boxes_move_with_flips_and_crops_and_batch_per_image(tmp_path):
    import albumentations as A
    from albumentations.pytorch import ToTensorV2
    from PIL import Image

    from fishbear.data.dataset import ImageDataset
    from fishbear.kinds import get_kind

    image = tmp_path / "frame.png"
    Image.new("RGB", (100, 50), (40, 80, 120)).save(image)
    boxes = Boxes(np.array([[10, 5, 30, 25], [80, 10, 100, 50]], dtype=np.float32), ("fish", "rock"), codes=(0, 1))
    samples = [Sample(image, boxes), Sample(image, Boxes.empty())]
    flip = A.Compose([A.HorizontalFlip(p=1.0), ToTensorV2()], **get_kind("detect").compose_args())
    item = ImageDataset(samples, flip, get_kind("detect"), 2)[0]
    assert item["target"]["boxes"].numpy() == pytest.approx(np.array([[70, 5, 90, 25], [0, 10, 20, 50]]), abs=1e-4)
    assert item["target"]["labels"].tolist() == [0, 1]
    # a crop that keeps the left 40 px leaves the first box whole and none of the second
    crop = A.Compose([A.Crop(0, 0, 40, 50), ToTensorV2()], **get_kind("detect").compose_args())
    kept = ImageDataset(samples, crop, get_kind("detect"), 2)[0]["target"]
    assert kept["boxes"].numpy() == pytest.approx(np.array([[10, 5, 30, 25]]), abs=1e-4) and kept["labels"].tolist() == [0]
    dataset = ImageDataset(samples, flip, get_kind("detect"), 2)
    batch = get_kind("detect").collate([dataset[0], dataset[1]])
    assert batch["image"].shape == (2, 3, 50, 100) and batch["index"].tolist() == [0, 1]
    assert [len(t["boxes"]) for t in batch["target"]] == [2, 0] and batch["target"][1]["boxes"].shape == (0, 4)


def test_boxes_are_read_in_the_original_images_pixels():
    from fishbear.kinds import get_kind

    found = {"boxes": torch.tensor([[10.0, 5.0, 20.0, 15.0], [0.0, 0.0, 4.0, 4.0]]), "scores": torch.tensor([0.3, 0.9]),
             "labels": torch.tensor([0, 0])}
    from ..conftest import model_meta

    meta = model_meta("detect", ["fish"], [32, 64])
    (result,) = get_kind("detect").interpret([found], [(64, 256)], meta)  # the frame was 4x wider, 2x taller
    assert result["boxes"] == [{"label": "fish", "score": pytest.approx(0.9), "box": [0.0, 0.0, 16.0, 8.0]}]
    assert result["label"] == "fish" and result["rows"][0]["xmax"] == "16.0"
    (empty,) = get_kind("detect").interpret([found], [(32, 64)], meta.with_settings(score_threshold=0.95))
    assert empty["label"] == "no_fish" and empty["probability"] == pytest.approx(0.1) and empty["rows"][0]["label"] == ""


def test_a_box_dataset_needs_a_detector(tmp_path):
    cfg = compose_train(["data=shapes_boxes", "model=convnet", "data.source.train=2", "data.source.valid=1",
                         "data.source.test=1", "data.source.image_size=32", *QUIET], tmp_path / "run")
    with pytest.raises(ConfigError, match="model=fasterrcnn_small"):
        train(cfg)


@pytest.mark.slow  # a learning benchmark (every kind keeps a fast smoke test: its docs command, tests/commands/test_cli.py)
def test_detector_learns_shapes_boxes_reports_predicts_and_sorts_frames(tmp_path):
    from PIL import Image

    from fishbear.formats.voc import VocReader
    from fishbear.frames import main as frames
    from fishbear.predict import main as predict

    run = tmp_path / "run"
    # 120 training images of 64 px, 8 epochs: about 11 s on 2 CPU cores (mAP@0.5 0.30-0.31 with seeds
    # 42, 1, 2; an untrained detector scores about 0)
    report = train(compose_train(["data=shapes_boxes", *SMALL, "data.source.image_size=64", "data.image_size=64",
                                  "data.source.train=30", "data.source.valid=10", "data.source.test=10",
                                  "data.batch_size=16", "data.augment=null", "trainer.max_epochs=8",
                                  "trainer.check_val_every_n_epoch=4",
                                  "callbacks.batch_grid.val_images=0", *QUIET], run))
    metrics = report["metrics"]
    assert_intervals(report, "detect")
    assert metrics["test/map_50"] > 0.15, metrics  # an untrained detector scores about 0
    assert metrics["test/map"] <= metrics["test/map_50"]
    section = report["detect"]
    assert section["map_50"] == pytest.approx(metrics["test/map_50"], abs=1e-4)
    assert [c["class"] for c in section["per_class"]] == ["circle", "square", "star", "triangle"]
    assert sum(c["true_boxes"] for c in section["per_class"]) > 40 and section["images_without_boxes"] > 0
    presence = section["presence"]
    assert sum(v for k, v in presence.items() if k != "accuracy") == 40 and 0 <= presence["accuracy"] <= 1
    assert (run / "pr_curve.png").is_file() and (run / "detection_samples.png").is_file()
    assert "| class | AP@0.5 |" in (run / "report.md").read_text()

    ckpt = run / "checkpoints" / "best.ckpt"
    images = tmp_path / "to_predict"
    images.mkdir()
    shown = sorted((Path(report["data"]["root"]) / "JPEGImages").glob("*.jpg"))[:3]
    for path in shown:
        Image.open(path).resize((128, 96)).save(images / path.name)  # not the model's size or shape
    predict([f"ckpt={ckpt}", f"input={images}", "score=0.1"])
    rows = read_rows(images / "predictions.csv")
    assert {row["file"] for row in rows} == {str(images / p.name) for p in shown}
    assert set(rows[0]) >= {"label", "score", "xmin", "ymin", "xmax", "ymax", "voc_xml", "drawn"}
    boxes = [row for row in rows if row["label"]]
    assert boxes and all(float(row["score"]) >= 0.1 for row in boxes)
    assert all(0 <= float(row["xmin"]) < float(row["xmax"]) <= 128 for row in boxes)
    # the VOC files load back (into an annotation tool, or fishbear's own reader) with the same boxes
    catalog = VocReader(annotations="predicted_boxes", images=".")(images)
    read = {s.image.name: s.target for s in catalog.splits["train"]}
    first = boxes[0]
    target = read[Path(first["file"]).name]
    assert [round(float(first[k])) for k in ("xmin", "ymin", "xmax", "ymax")] in target.xyxy.round().tolist()
    assert (images / "predicted_boxes" / f"{shown[0].stem}.boxes.jpg").is_file()

    video = write_video(tmp_path / "clip.mp4", [np.asarray(Image.open(p).convert("RGB")) for p in shown] * 2)
    table = frames([f"video={video}", f"out={tmp_path / 'sorted'}", f"sort_with={ckpt}", "score=0.1"])
    rows = read_rows(table)
    assert len(rows) == 6 and "boxes" in rows[0]
    assert {row["class"] for row in rows} <= {"circle", "square", "star", "triangle", "nothing"}
    assert all((tmp_path / "sorted" / row["file"]).is_file() for row in rows)


def test_real_fish_boxes_load_with_negatives_in_every_split():
    root = requires_shared("fish", "video1_output")
    from fishbear.engine.experiment import build_datamodule

    datamodule = build_datamodule(compose_train(["data=fish_boxes", f"data.root={root}", "data.num_workers=0"]))
    datamodule.setup()
    assert datamodule.classes == ["fish"]
    sizes, split = datamodule.describe()["sizes"], datamodule.describe()["split"]
    assert sum(sizes.values()) + split["dropped_at_boundaries"] == 168
    # split by time: the test frames are the video's last seconds, after the validation ones
    assert split["strategy"] == "time" and split["order_range"]["train"][1] < split["order_range"]["valid"][0]
    assert split["order_range"]["valid"][1] < split["order_range"]["test"][0]
    for name in ("train", "valid", "test"):
        samples = datamodule.samples(name)
        empty = sum(1 for s in samples if len(s.target) == 0)
        assert 0 < empty < len(samples)  # frames with and without fish on every side
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape[-2:] == (288, 512) and len(batch["target"]) == len(batch["image"])
