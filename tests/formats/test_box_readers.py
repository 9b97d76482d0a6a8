"""COCO, YOLO and CVAT read with their traps handled, and ``fishbear.convert`` between the box
formats: a round trip VOC -> COCO -> YOLO -> VOC keeps every box within half a pixel."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from fishbear.core.errors import DataError
from fishbear.formats.cntk import CntkReader
from fishbear.formats.coco import (
    CocoNegativesReader,
    CocoReader,
)
from fishbear.formats.cvat import CvatReader
from fishbear.formats.via import ViaReader
from fishbear.formats.voc import VocReader
from fishbear.formats.vott_csv import VottCsvReader
from fishbear.formats.vott_json import VottJsonReader
from fishbear.formats.yolo import YoloReader
from tests.conftest import requires_shared

FRAME_132 = [[458, 0, 592, 92], [245, 44, 382, 105]]  # the same boxes in VOC, CNTK and VoTT


def _boxes(catalog, stem):
    (sample,) = [s for s in catalog.splits["train"] if s.image.stem == stem]
    return sample.target


def _image(path, size=(64, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)
    return path


def test_coco_ids_with_gaps_crowds_and_subsets():
    root = requires_shared("coco")
    data = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    crowd = sum(a["iscrowd"] for a in data["annotations"])
    catalog = CocoReader()(root)
    assert len(catalog.splits["train"]) == 80 and len(catalog.classes) == 80 and crowd == 8
    assert sum(len(s.target) for s in catalog.splits["train"]) == len(data["annotations"]) - crowd
    assert sum(len(s.target) for s in CocoReader(crowd="keep")(root).splits["train"]) == len(data["annotations"])
    bears = CocoReader(categories=["bear"])(root)
    with_bears = {s.image.name: len(s.target) for s in bears.splits["train"] if len(s.target)}
    assert with_bears == {"000000249346.jpg": 1, "000000353072.jpg": 2}
    assert len(bears.splits["train"]) == 80  # the other 78 kept, as negatives
    not_bear = CocoReader(exclude=["bear"])(root)
    assert len(not_bear.splits["train"]) == 78


def test_yolo_coco128_negatives_and_orphan_labels(caplog):
    root = requires_shared("yolo", "coco128")
    with caplog.at_level(logging.WARNING):
        catalog = YoloReader(yaml="coco128.yaml", images="images/train2017", labels="labels/train2017")(root)
    samples = {s.image.stem: s.target for s in catalog.splits["train"]}
    assert len(samples) == 128 and not len(samples["000000000250"]) and not len(samples["000000000508"])
    orphans = sum(len((root / "labels/train2017" / f"{n}.txt").read_text().splitlines())
                  for n in ("000000000656", "000000000659"))
    assert sum(len(b) for b in samples.values()) == 941 - orphans
    assert "000000000656.txt" in caplog.text and "no image" in caplog.text
    person = next(b for b in samples.values() if "person" in b.labels)
    assert person.xyxy.min() >= 0


def test_cvat_boxes_polygons_and_ellipses():
    root = requires_shared("cvat", "cvat1.1")
    catalog = CvatReader()(root)
    boxes = [b for s in catalog.splits["train"] for b in zip(s.target.xyxy.tolist(), s.target.labels)]
    assert len(catalog.splits["train"]) == 4 and len(boxes) == 18 + 3 + 2 + 2
    ellipse = [xyxy for xyxy, label in boxes if label == "ellipse"]
    assert any(x0 == pytest.approx(447.89 - 82.09, abs=0.01) and y1 == pytest.approx(314.61 + 82.09, abs=0.01)
               for x0, _, _, y1 in ellipse)


def test_bears_coco_takes_the_bear_free_coco_images_as_not_bear(tmp_path):
    from fishbear.engine.experiment import build_datamodule
    from tests.conftest import compose_train

    shared = requires_shared("coco").parent
    requires_shared("bears")
    dm = build_datamodule(compose_train(["data=bears_coco", f"data.root={shared}", "data.num_workers=0"], tmp_path))
    dm.setup()
    assert dm.classes == ["bear", "not_bear"]
    every = [s for split in dm.catalog.splits.values() for s in split]
    negatives = {s.image.name for s in every if s.target == 1}
    assert len(negatives) == 78 and not negatives & {"000000249346.jpg", "000000353072.jpg"}
    assert sum(s.target == 0 for s in every) == 256  # the bear photos of bears/train/bear
    from_coco = CocoNegativesReader(positives=None, negatives=10, test_per_class=1)(shared)
    bears = [s.image.name for split in from_coco.splits.values() for s in split if s.target == 0]
    assert sorted(bears) == ["000000249346.jpg", "000000353072.jpg"]
    assert len(from_coco.splits["test"]) == 2 and sum(len(v) for v in from_coco.splits.values()) == 12


def test_real_voc_files(caplog):
    root = requires_shared("detection", "fish_voc")
    catalog = VocReader()(root)
    samples = catalog.splits["train"]
    assert len(samples) == 75 and catalog.classes == ["fish"] and catalog.kind == "detect"
    assert _boxes(catalog, "video1_frame_132").xyxy.tolist() == FRAME_132
    assert sum(1 for s in samples if len(s.target) == 0) == 63
    # 23 boxes in the XML; 9 tracked boxes drifted off the 600-pixel frame (x 661-715) and are
    # dropped after clipping, which the log says
    assert sum(len(s.target) for s in samples) == 14
    assert "9 left without area were dropped" in caplog.text


def test_real_cntk_via_and_vott_files_agree_where_they_should():
    fish = requires_shared("fish", "video1_output")
    detection = requires_shared("detection", "fish_voc")
    cntk = CntkReader(folders=["positive", "negative", "testImages"])(fish)
    assert len(cntk.splits["train"]) == 168
    assert _boxes(cntk, "video1_frame_132").xyxy.tolist() == FRAME_132
    assert len(_boxes(cntk, "video1_frame_1")) == 0  # negative/ frames have no tsv files
    vott = VottJsonReader(file="video1.mp4.json", images="JPEGImages")(detection)
    # display coordinates normalised per region (1160x650 for this frame), scaled to 600x336
    assert np.allclose(_boxes(vott, "video1_frame_132").xyxy, FRAME_132, atol=1.5)
    via = ViaReader(images="JPEGImages")(detection)
    assert len(via.splits["train"]) == 75 and sum(len(s.target) for s in via.splits["train"]) == 22
    assert sum(1 for s in via.splits["train"] if len(s.target)) == 12
    box = _boxes(via, "video1_frame_24").xyxy[0]  # a polygon's bounding box
    assert (box[2] > box[0]) and (box[3] > box[1])


def test_voc_fixture_difficult_missing_extension_and_errors(tmp_path):
    _image(tmp_path / "JPEGImages" / "a.jpg")
    xml = ("<annotation><filename>a</filename>"
           "<object><name>fish</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>12</ymax></bndbox></object>"
           "<object><name>crab</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>80</xmax><ymax>20</ymax></bndbox></object>"
           "</annotation>")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(xml)
    catalog = VocReader()(tmp_path)
    boxes = catalog.splits["train"][0].target
    assert catalog.classes == ["crab", "fish"] and boxes.difficult == (True, False)
    assert boxes.xyxy[1].tolist() == [5, 5, 64, 20]  # clipped to the 64-pixel width
    assert VocReader(keep_difficult=False)(tmp_path).splits["train"][0].target.labels == ("crab",)
    with pytest.raises(DataError,
                       match=r"Annotations, image .*a.jpg: box \[5.0, 5.0, 80.0, 20.0\] \(crab\) lies outside its 64x48 image"):
        VocReader(on_outside="reject")(tmp_path)
    (tmp_path / "Annotations" / "a.xml").write_text(xml.replace("<xmax>10</xmax>", ""))
    with pytest.raises(DataError, match=r"a.xml: an <object>'s <bndbox> has no <xmax>"):
        VocReader()(tmp_path)
    (tmp_path / "Annotations" / "a.xml").write_text("<annotation>")
    with pytest.raises(DataError, match=r"a.xml is not valid XML"):
        VocReader()(tmp_path)


def test_via2_rects_and_the_label_attribute(tmp_path):
    _image(tmp_path / "img" / "b.png")
    project = {"_via_img_metadata": {"b.png123": {"filename": "b.png", "size": 123, "regions": [
        {"shape_attributes": {"name": "rect", "x": 2, "y": 3, "width": 10, "height": 5},
         "region_attributes": {"species": "cod"}}]}}}
    (tmp_path / "via.json").write_text(json.dumps(project))
    catalog = ViaReader(json="via.json", images="img", label_attribute="species")(tmp_path)
    assert catalog.splits["train"][0].target.xyxy.tolist() == [[2, 3, 12, 8]] and catalog.classes == ["cod"]
    with pytest.raises(DataError, match=r"region 0: no region attribute 'class'.*data.reader.label_attribute"):
        ViaReader(json="via.json", images="img")(tmp_path)


def test_vott_csv_and_json_exports(tmp_path):
    _image(tmp_path / "c.jpg")
    _image(tmp_path / "d.jpg")
    (tmp_path / "vott-csv-export.csv").write_text('"image","xmin","ymin","xmax","ymax","label"\n'
                                                  '"c.jpg",1,2,30,40,"fish"\n"c.jpg",3,4,5,6,"crab"\n')
    catalog = VottCsvReader()(tmp_path)
    assert catalog.splits["train"][0].target.labels == ("fish", "crab")
    export = {"assets": {"x1": {"asset": {"name": "d.jpg", "size": {"width": 64, "height": 48}},
                                "regions": [{"boundingBox": {"left": 4, "top": 5, "width": 6, "height": 7},
                                             "tags": ["fish"]}]}}}
    (tmp_path / "vott-json-export.json").write_text(json.dumps(export))
    assert VottJsonReader()(tmp_path).splits["train"][0].target.xyxy.tolist() == [[4, 5, 10, 12]]
    (tmp_path / "vott-csv-export.csv").write_text('image,xmin,ymin,xmax,ymax,label\nc.jpg,1,two,3,4,fish\n')
    with pytest.raises(DataError, match=r"vott-csv-export.csv, line 2: xmin, ymin, xmax, ymax must be numbers"):
        VottCsvReader()(tmp_path)


def test_cntk_pair_errors(tmp_path):
    _image(tmp_path / "e.jpg")
    (tmp_path / "e.bboxes.tsv").write_text("1\t2\t3\t4\n5\t6\t7\t8\n")
    (tmp_path / "e.bboxes.labels.tsv").write_text("fish\n")
    with pytest.raises(DataError, match=r"e.bboxes.tsv has 2 box\(es\) but .*e.bboxes.labels.tsv has 1 label"):
        CntkReader()(tmp_path)


def test_swapped_corners_are_reordered_or_refused_by_name(tmp_path, caplog):
    from fishbear.formats.voc import voc_xml

    _image(tmp_path / "JPEGImages" / "frame.jpg", size=(64, 48))
    (tmp_path / "Annotations").mkdir()
    # drawn from the bottom right: xmax < xmin and ymax < ymin
    (tmp_path / "Annotations" / "frame.xml").write_text(voc_xml("frame.jpg", 64, 48, [("fish", (40, 30, 10, 5))]))
    catalog = VocReader()(tmp_path)
    assert _boxes(catalog, "frame").xyxy.tolist() == [[10, 5, 40, 30]]  # a labelled frame, not a negative
    assert "1 box(es) had their corners swapped and were reordered" in caplog.text
    with pytest.raises(DataError,
                       match=r"image .*frame\.jpg: box \[40\.0, 30\.0, 10\.0, 5\.0\] \(fish\) has its corners swapped"):
        VocReader(on_swapped="reject")(tmp_path)
