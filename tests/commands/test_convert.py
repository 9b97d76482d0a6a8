"""Label files stay inside their dataset: an image name that reaches outside (``..``, an absolute
path, a link inside the folder that points out) is refused with the file, the entry and the fix,
in every reader that takes names from a label file; ``allow_outside=true`` opts out. Files a user
puts in a folder tree (symlinks included) are the user's choice and stay readable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fishbear.convert import main as convert
from fishbear.formats.coco import (
    CocoReader,
    coco_instances,
    coco_results,
)
from fishbear.formats.voc import VocReader, voc_xml
from tests.conftest import file_digests, one_error, requires_shared


# -- convert ---------------------------------------------------------------------------------------
def _voc_dataset(root: Path, names: list[str]) -> Path:

    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    for i, name in enumerate(names):
        Image.fromarray(np.full((40, 60, 3), 30 * i, np.uint8)).save(root / "JPEGImages" / name)
        stem = f"label{i}"
        (root / "Annotations" / f"{stem}.xml").write_text(voc_xml(name, 60, 40, [("fish", (5, 5, 30, 20))]))
    return root


def _boxes_by_name(catalog):
    return {s.image.name: s.target for s in catalog.splits["train"]}


def _documented_converts() -> list[str]:
    from tests.commands.test_cli import readme_commands

    return [c for c in readme_commands() if c.startswith("python -m fishbear.convert")]


def test_convert_reruns_into_its_own_output_and_refuses_the_users(tmp_path, capsys):
    from fishbear.convert import main

    source = _voc_dataset(tmp_path / "voc", ["a.jpg", "b.jpg"])
    dst = tmp_path / "coco"
    args = [f"src={source}", "src_format=voc", f"dst={dst}", "dst_format=coco"]
    main(args)
    main(args)  # its own output: written again
    assert "replaced" in capsys.readouterr().out
    instances = dst / "annotations" / "instances_train2017.json"
    instances.write_text(instances.read_text().replace('"fish"', '"cod"'))  # the user edits the labels
    before = file_digests(dst)
    assert "instances_train2017.json exists and was not written by fishbear" in one_error(main, args, capsys)
    assert file_digests(dst) == before
    (tmp_path / "a-file").write_text("x")
    assert "is a file; the output here is a folder" in one_error(
        main, [f"src={source}", "src_format=voc", f"dst={tmp_path / 'a-file'}", "dst_format=coco"], capsys)


def test_convert_refuses_two_images_that_would_share_a_label_file(tmp_path, capsys):
    from fishbear.convert import main

    source = _voc_dataset(tmp_path / "voc", ["X.jpg", "X.png"])
    line = one_error(main, [f"src={source}", "src_format=voc", f"dst={tmp_path / 'out'}", "dst_format=voc"], capsys)
    assert "X.jpg and" in line and "X.png would both be written as label files" in line
    assert not (tmp_path / "out").exists()


def test_round_trip_voc_coco_yolo_voc_keeps_every_box(tmp_path):
    source = requires_shared("detection", "fish_voc")
    convert([f"src={source}", "src_format=voc", f"dst={tmp_path / 'coco'}", "dst_format=coco"])
    convert([f"src={tmp_path / 'coco'}", "src_format=coco", f"dst={tmp_path / 'yolo'}", "dst_format=yolo"])
    convert([f"src={tmp_path / 'yolo'}", "src_format=yolo", f"dst={tmp_path / 'voc'}", "dst_format=voc"])
    before = _boxes_by_name(VocReader()(source))
    after = _boxes_by_name(VocReader()(tmp_path / "voc"))
    assert set(before) == set(after) and len(before) == 75
    for name, boxes in before.items():
        assert after[name].labels == boxes.labels, name
        assert np.abs(after[name].xyxy - boxes.xyxy).max(initial=0) <= 0.5, name
    empty = [name for name, boxes in before.items() if not len(boxes)]
    assert empty and all(not len(after[name]) for name in empty)


def test_coco_written_loads_in_pycocotools_and_evaluates_perfect_predictions(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    root = requires_shared("coco")
    catalog = CocoReader(categories=["bear", "dog", "person"])(root)
    entries = [(s.image, s.target) for s in catalog.splits["train"]]
    (tmp_path / "gt.json").write_text(json.dumps(coco_instances(entries, catalog.classes, root / "train2017")))
    truth = COCO(str(tmp_path / "gt.json"))
    results = coco_results([(i, [{"label": label, "score": 0.9, "box": b.tolist()} for b, label in zip(t.xyxy, t.labels)])
                            for i, (_, t) in enumerate(entries, start=1)], catalog.classes)
    evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0, abs=1e-3)  # every box predicted exactly


def test_convert_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "x").write_text("")
    with pytest.raises(SystemExit) as stop:
        convert([f"src={tmp_path}", "src_format=voc", f"dst={tmp_path / 'dst'}", "dst_format=voc"])
    assert stop.value.code == 2 and "exists and was not written by fishbear" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        convert([f"src={tmp_path}", "src_format=voc", f"dst={tmp_path / 'new'}", "dst_format=tfrecord"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "dst_format=tfrecord: fishbear writes boxes as coco, labelstudio, voc, yolo" in err


@pytest.mark.parametrize("command", _documented_converts())
def test_documented_convert_commands_run(command, tmp_path, monkeypatch):
    """The README's and the docs' commands, from the repository root (where ``../shared`` is), into
    a scratch dst; the result reads back with the destination format's own reader."""
    from fishbear.formats import FORMATS
    from tests.conftest import REPO

    requires_shared("coco")
    monkeypatch.chdir(REPO)
    args = [a if not a.startswith("dst=") else f"dst={tmp_path / 'out'}" for a in command.split()[3:]]
    out = convert(args)
    dst_format = next(a.split("=", 1)[1] for a in args if a.startswith("dst_format="))
    catalog = FORMATS[dst_format].reader()(out)
    assert len(catalog.splits["train"]) == 80 and len(catalog.classes) == 80


def test_cocoeval_on_the_written_results_equals_fishbears_map():
    """Predictions near the true boxes, with scores: pycocotools' COCOeval on the results file and
    instances JSON fishbear writes gives the mAP fishbear's own metric (torchmetrics) reports."""
    import torch
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from fishbear.reports.metrics import BoxMAP

    root = requires_shared("coco")
    catalog = CocoReader(categories=["person", "dog", "car", "bear"])(root)
    entries = [(s.image, s.target) for s in catalog.splits["train"]]
    rng = np.random.default_rng(0)
    predicted, metric = [], BoxMAP()
    for image_id, (_, truth) in enumerate(entries, start=1):
        boxes = truth.xyxy + rng.normal(0, 6, truth.xyxy.shape).astype(np.float32)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        scores = rng.uniform(0.05, 1.0, len(boxes))
        keep = rng.uniform(size=len(boxes)) < 0.8  # some objects missed
        predicted.append((image_id, [{"label": label, "score": float(s), "box": b.tolist()}
                                     for b, label, s, k in zip(boxes, truth.labels, scores, keep) if k]))
        metric.update([{"boxes": torch.tensor(boxes[keep]), "scores": torch.tensor(scores[keep], dtype=torch.float32),
                        "labels": torch.tensor([c for c, k in zip(truth.codes, keep) if k], dtype=torch.long)}],
                      [{"boxes": torch.tensor(truth.xyxy), "labels": torch.tensor(truth.codes, dtype=torch.long)}])
    ours = metric.compute()
    import contextlib
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        gt = Path(tmp) / "gt.json"
        gt.write_text(json.dumps(coco_instances(entries, catalog.classes, root / "train2017")))
        truth = COCO(str(gt))
        evaluation = COCOeval(truth, truth.loadRes(coco_results(predicted, catalog.classes)), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert 0.2 < float(ours["map"]) < 0.95
    assert evaluation.stats[0] == pytest.approx(float(ours["map"]), abs=0.005)
    assert evaluation.stats[1] == pytest.approx(float(ours["map_50"]), abs=0.005)


def test_predict_writes_boxes_as_coco_and_yolo_for_annotation_tools(trained_detector, tmp_path):
    from fishbear.predict import main as predict

    ckpt, images = trained_detector
    for fmt in ("coco", "yolo"):
        out = tmp_path / fmt
        predict([f"ckpt={ckpt}", f"input={images}", f"boxes={out}", f"format={fmt}", "score=0.0",
                 f"output={tmp_path / (fmt + '.csv')}"])
        if fmt == "coco":
            from pycocotools.coco import COCO

            data = json.loads((out / "instances.json").read_text())
            assert len(data["images"]) == len(list(images.glob("*.jpg")))
            results = json.loads((out / "results.json").read_text())
            assert len(results) == len(data["annotations"]) and all("score" in a for a in data["annotations"])
            COCO(str(out / "instances.json")).loadRes(results)
        else:
            assert (out / "data.yaml").is_file() and list(out.glob("*.txt"))


@pytest.mark.slow
def test_a_detector_trains_on_the_coco_reader(tmp_path):
    from fishbear.train import train
    from tests.conftest import compose_train

    root = requires_shared("coco")
    report = train(compose_train(["data=boxes", "data/reader=coco", f"data.root={root}", "model=fasterrcnn_small",
                                  "data.image_size=[96,128]", "data.batch_size=4", "data.num_workers=0",
                                  "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                                  "trainer.num_sanity_val_steps=0", "logger=none"], tmp_path))
    assert len(report["classes"]) == 80 and report["data"]["sizes"]["test"] == 16
    assert set(report["metrics"]) == {"test/map", "test/map_50", "test/map_75", "test/mar_100"}
