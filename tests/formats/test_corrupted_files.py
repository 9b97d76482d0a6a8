"""Corrupted label files and images, as real exports and disks leave them (bytes cut, fields
dropped, numbers garbled, another encoding), through every reader: the reader either reads
what is there or raises fishbear's own error naming the file. Never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fishbear.core.errors import DataError
from fishbear.data.images import load_rgb
from fishbear.data.label_files import read_codes
from fishbear.formats.cntk import CntkReader
from fishbear.formats.coco import CocoReader
from fishbear.formats.cvat import CvatReader
from fishbear.formats.points_csv import PointsCsvReader
from fishbear.formats.tags_csv import TagCsvReader
from fishbear.formats.values_csv import ValuesCsvReader
from fishbear.formats.via import ViaReader
from fishbear.formats.voc import VocReader, voc_xml
from fishbear.formats.vott_csv import VottCsvReader
from fishbear.formats.vott_json import VottJsonReader
from fishbear.formats.yolo import YoloReader

VIA = {"_via_img_metadata": {"a.jpg1": {"filename": "a.jpg", "size": 1, "regions": [
    {"shape_attributes": {"name": "rect", "x": 2, "y": 3, "width": 10, "height": 5}, "region_attributes": {"class": "cod"}},
    {"shape_attributes": {"name": "polygon", "all_points_x": [1, 9, 5], "all_points_y": [2, 2, 9]},
     "region_attributes": {"class": "eel"}}]}}}


VOTT_JSON = {"assets": {"x": {"asset": {"name": "a.jpg", "size": {"width": 64, "height": 48}},
                              "regions": [{"tags": ["fish"], "boundingBox": {"left": 1, "top": 2, "width": 9, "height": 7}}]}}}


COCO = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 20, 10], "iscrowd": 0}],
        "categories": [{"id": 7, "name": "fish"}]}


CVAT = ('<annotations><image id="0" name="a.jpg" width="64" height="48"><box label="fish" xtl="1" ytl="2" xbr="30" '
        'ybr="20"/><ellipse label="eel" cx="20" cy="20" rx="5" ry="4"/></image></annotations>')


# (reader, label file under the root, its valid text): every label format fishbear reads
CASES = {
    "voc": (VocReader(), "Annotations/a.xml", voc_xml("a.jpg", 64, 48, [("fish", (1, 2, 30, 20)), ("crab", (5, 5, 9, 9))])),
    "via": (ViaReader(json="via.json"), "via.json", json.dumps(VIA)),
    "vott_csv": (VottCsvReader(file="vott.csv"), "vott.csv", "image,xmin,ymin,xmax,ymax,label\na.jpg,1,2,30,20,fish\n"),
    "vott_json": (VottJsonReader(file="vott.json"), "vott.json", json.dumps(VOTT_JSON)),
    "cntk": (CntkReader(), "a.bboxes.tsv", "1\t2\t30\t20\n5\t5\t9\t9\n"),
    "coco": (CocoReader(json="coco.json", images="."), "coco.json", json.dumps(COCO)),
    "yolo": (YoloReader(yaml="data.yaml", images=".", labels="."), "a.txt", "0 0.25 0.3 0.2 0.1\n1 0.5 0.5 0.1 0.2\n"),
    "cvat": (CvatReader(xml="cvat.xml", images="."), "cvat.xml", CVAT),
    "tags": (TagCsvReader(csv="tags.csv", folder="."), "tags.csv", "image_name,tags\na,clear primary\n"),
    "points": (PointsCsvReader(folder="."), "points.csv", "image,x1,y1\na.jpg,10.5,20\n"),
    "values": (ValuesCsvReader(folder="."), "values.csv", "image,count\na.jpg,3\n"),
}


def corrupt(data: bytes, how: str, at: float, junk: bytes) -> bytes:
    cut = int(at * len(data))
    if how == "cut":
        return data[:cut]
    if how == "junk":
        return data[:cut] + junk + data[cut + len(junk):]
    if how == "drop_line":
        lines = data.split(b"\n")
        del lines[min(int(at * len(lines)), len(lines) - 1)]
        return b"\n".join(lines)
    if how == "garble_numbers":  # some digits become letters
        step = 2 + int(at * 3)
        return bytes(ord("x") if chr(c).isdigit() and i % step == 0 else c for i, c in enumerate(data))
    return data.decode("utf-8").encode("utf-16")  # another encoding


CORRUPTIONS = st.tuples(st.sampled_from(["cut", "junk", "drop_line", "garble_numbers", "utf16"]),
                        st.floats(0, 1), st.binary(min_size=1, max_size=12))


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_corrupted_label_file_is_read_or_named(name, tmp_path_factory):
    reader, label, text = CASES[name]

    @settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(CORRUPTIONS)
    def check(corruption):
        root = tmp_path_factory.mktemp(name)
        Image.new("RGB", (64, 48), (30, 90, 120)).save(root / "a.jpg")
        (root / "JPEGImages").mkdir()
        Image.new("RGB", (64, 48)).save(root / "JPEGImages" / "a.jpg")
        if name == "cntk":
            (root / "a.bboxes.labels.tsv").write_text("fish\ncrab\n")
        if name == "yolo":
            (root / "data.yaml").write_text("names: [fish, crab]\n")
        path = root / label
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(corrupt(text.encode("utf-8"), *corruption))
        try:
            reader(root)
        except DataError as err:
            assert path.name in str(err) or str(root) in str(err), str(err)

    check()


@settings(max_examples=80, deadline=None, derandomize=True)
@given(CORRUPTIONS)
def test_a_corrupted_image_or_codes_file_is_named(corruption):
    import io
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / "frame.jpg"
        buffer = io.BytesIO()
        Image.new("RGB", (32, 24), (200, 10, 10)).save(buffer, format="JPEG")
        how = corruption[0] if corruption[0] != "utf16" else "cut"  # an image has no text encoding
        image.write_bytes(corrupt(buffer.getvalue(), how, *corruption[1:]))
        try:
            assert load_rgb(image).shape[2] == 3
        except DataError as err:
            assert "frame.jpg" in str(err)
        codes = Path(folder) / "codes.txt"
        codes.write_bytes(corrupt(b"Sky\nRoad\nVoid\n", *corruption))
        try:
            read_codes(codes)
        except DataError as err:
            assert "codes.txt" in str(err)


def test_duplicate_ids_names_and_stems_are_errors_naming_the_entry(tmp_path):
    Image.new("RGB", (64, 48)).save(tmp_path / "a.jpg")
    Image.new("RGB", (64, 48)).save(tmp_path / "b.jpg")
    twice = dict(COCO, images=[{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                               {"id": 1, "file_name": "b.jpg", "width": 64, "height": 48}])
    (tmp_path / "coco.json").write_text(json.dumps(twice))
    with pytest.raises(DataError, match=r"coco.json: images\[1\] \('b.jpg'\) has id 1, which images\[0\] already has"):
        CocoReader(json="coco.json", images=".")(tmp_path)
    same = dict(COCO, images=[{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                              {"id": 2, "file_name": "a.jpg", "width": 64, "height": 48}])
    (tmp_path / "coco.json").write_text(json.dumps(same))
    with pytest.raises(DataError, match=r"images\[1\] lists file_name 'a.jpg' again \(first at images\[0\]\)"):
        CocoReader(json="coco.json", images=".")(tmp_path)
