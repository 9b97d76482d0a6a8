"""Label Studio JSON, read and written as one new module (``fishbear/formats/labelstudio.py``) plus
its reader config: the proof that a box format read and written touches nothing else. A round
trip COCO -> Label Studio -> COCO on the shared COCO keeps every box within half a pixel and every
image without boxes; a real export's traps (uploaded names, several annotations, cancelled ones,
rotation, unlabelled tasks) are read as Label Studio means them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fishbear.core.errors import DataError
from fishbear.formats import FORMATS, writable
from fishbear.formats.coco import CocoReader
from fishbear.formats.labelstudio import LabelStudioReader
from tests.conftest import requires_shared


def _by_name(catalog):
    return {s.image.name: s.target for s in catalog.splits["train"]}


def test_labelstudio_is_registered_read_and_written():
    fmt = FORMATS["labelstudio"]
    assert fmt.kind == "detect" and fmt.reader is LabelStudioReader and "labelstudio" in writable()


def test_round_trip_coco_to_labelstudio_to_coco_keeps_every_box_and_every_empty_image(tmp_path):
    from fishbear.convert import main as convert

    root = requires_shared("coco")
    convert([f"src={root}", "src_format=coco", "reader.crowd=keep", f"dst={tmp_path / 'ls'}", "dst_format=labelstudio"])
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert len(tasks) == 80 and all(t["data"]["image"].startswith("images/") for t in tasks)
    assert "<RectangleLabels" in (tmp_path / "ls" / "label_config.xml").read_text()
    convert([f"src={tmp_path / 'ls'}", "src_format=labelstudio", f"dst={tmp_path / 'coco'}", "dst_format=coco"])
    before = _by_name(CocoReader(crowd="keep")(root))
    after = _by_name(CocoReader()(tmp_path / "coco"))
    assert set(before) == set(after) and len(before) == 80
    for name, boxes in before.items():
        assert sorted(after[name].labels) == sorted(boxes.labels), name
        order_a, order_b = np.lexsort(boxes.xyxy.T[::-1]), np.lexsort(after[name].xyxy.T[::-1])
        assert np.abs(after[name].xyxy[order_b] - boxes.xyxy[order_a]).max(initial=0) <= 0.5, name
    empty = [name for name, boxes in before.items() if not len(boxes)]
    assert all(not len(after[name]) for name in empty)


def test_a_real_exports_traps(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        Image.new("RGB", (200, 100)).save(tmp_path / name)

    def rect(x, y, w, h, label="fish", rotation=0):
        return {"type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": 200,
                "original_height": 100, "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation,
                                                  "rectanglelabels": [label]}}

    tasks = [
        # uploaded: Label Studio prefixes the file name; two annotations, the later one counts
        {"id": 1, "data": {"image": "/data/upload/3/1a2b3c4d-a.jpg"}, "annotations": [
            {"id": 10, "updated_at": "2026-01-01T10:00:00Z", "result": [rect(0, 0, 10, 10, "crab")]},
            {"id": 11, "updated_at": "2026-01-02T10:00:00Z", "result": [rect(10, 20, 30, 40)]}]},
        # a local file; its only annotation was cancelled: unlabelled, left out
        {"id": 2, "data": {"image": "/data/local-files/?d=fish/b.jpg"},
         "annotations": [{"id": 12, "was_cancelled": True, "result": [rect(0, 0, 5, 5)]}]},
        # annotated with no box: a negative
        {"id": 3, "data": {"image": "https://bucket.example/frames/c.jpg?X-Amz=1"}, "annotations": [{"result": []}]},
        # a rotated box: read as the box around it
        {"id": 4, "data": {"image": "d.jpg"}, "annotations": [{"result": [rect(50, 50, 10, 10, rotation=90)]}]},
        # never annotated: unlabelled
        {"id": 5, "data": {"image": "d.jpg"}, "predictions": [{"result": [rect(0, 0, 50, 50)]}]},
    ]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    boxes = _by_name(LabelStudioReader(json="export.json")(tmp_path))
    assert set(boxes) == {"a.jpg", "c.jpg", "d.jpg"}
    assert boxes["a.jpg"].labels == ("fish",) and boxes["a.jpg"].xyxy.tolist() == [[20, 20, 80, 60]]
    assert not len(boxes["c.jpg"])
    # 20 x 10 px at (100, 50), turned 90 degrees about that corner: 10 wide, 20 tall, left of it
    assert boxes["d.jpg"].xyxy.ravel().tolist() == pytest.approx([90, 50, 100, 70], abs=1e-4)
    predicted = _by_name(LabelStudioReader(json="export.json", source="predictions")(tmp_path))
    assert set(predicted) == {"d.jpg"} and predicted["d.jpg"].xyxy.tolist() == [[0, 0, 100, 50]]


def test_a_task_naming_an_image_outside_the_dataset_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (20, 20)).save(outside / "secret.jpg")
    (tmp_path / "ds").mkdir()
    task = {"data": {"image": "/data/local-files/?d=../outside/secret.jpg"}, "annotations": [{"result": []}]}
    (tmp_path / "ds" / "tasks.json").write_text(json.dumps([task]))
    with pytest.raises(DataError, match="outside the dataset folder"):
        LabelStudioReader()(tmp_path / "ds")


def test_predict_writes_label_studio_tasks_with_scores_that_read_back(trained_detector, tmp_path):
    import shutil

    from fishbear.predict import main as predict

    ckpt, images = trained_detector
    folder = tmp_path / "frames"
    shutil.copytree(images, folder)
    predict([f"ckpt={ckpt}", f"input={folder}", "format=labelstudio", "score=0.0"])
    tasks = json.loads((folder / "predicted_boxes" / "tasks.json").read_text())
    assert len(tasks) == 3 and all("predictions" in t and "annotations" not in t for t in tasks)
    scores = [r["score"] for t in tasks for r in t["predictions"][0]["result"]]
    assert scores and all(0 <= s <= 1 for s in scores)
    read = LabelStudioReader(json="predicted_boxes/tasks.json", source="predictions")(folder)
    assert len(read.splits["train"]) == 3
    assert sum(len(s.target) for s in read.splits["train"]) == len(scores)
