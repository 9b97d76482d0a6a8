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


# -- hostile entries: names that reach outside, numbers that are not, ids and names twice ---------
def _label_text(name: str, image: str, box: tuple[str, str, str, str]) -> tuple[str, str]:
    """The label file (path under the root, text) of format ``name`` naming ``image`` once, with
    one box ``x0, y0, x1, y1`` written as the given strings (so ``nan`` and ``inf`` reach the reader)."""
    x0, y0, x1, y1 = box
    if name == "coco":
        # written by hand, not json.dumps: the numbers go in as the strings given (nan, inf, 1e400)
        bbox = f"[{x0}, {y0}, {x1}, {y1}]"
        return "coco.json", ('{"images": [{"id": 1, "file_name": ' + json.dumps(image) + ', "width": 64, "height": 48}], '
                             '"annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": ' + bbox + ', "iscrowd": 0}], '
                             '"categories": [{"id": 7, "name": "fish"}]}')
    if name == "via":
        return "via.json", json.dumps({"k": {"filename": image, "regions": [{"shape_attributes": {
            "name": "rect", "x": x0, "y": y0, "width": x1, "height": y1}, "region_attributes": {"class": "cod"}}]}})
    if name == "cvat":
        from xml.sax.saxutils import quoteattr

        return "cvat.xml", (f'<annotations><image id="0" name={quoteattr(image)} width="64" height="48"><box label="fish" '
                            f'xtl="{x0}" ytl="{y0}" xbr="{x1}" ybr="{y1}"/></image></annotations>')
    if name == "vott_csv":
        return "vott.csv", f"image,xmin,ymin,xmax,ymax,label\n{json.dumps(image)},{x0},{y0},{x1},{y1},fish\n"
    if name == "vott_json":
        return "vott.json", json.dumps({"assets": {"x": {"asset": {"name": image}, "regions": [
            {"tags": ["fish"], "boundingBox": {"left": x0, "top": y0, "width": x1, "height": y1}}]}}})
    from xml.sax.saxutils import escape

    return "Annotations/a.xml", voc_xml("PLACEHOLDER", 64, 48, [("fish", (1, 2, 3, 4))]).replace(
        "PLACEHOLDER", escape(image)).replace("<xmin>1</xmin>", f"<xmin>{x0}</xmin>").replace(
        "<ymin>2</ymin>", f"<ymin>{y0}</ymin>").replace("<xmax>3</xmax>", f"<xmax>{x1}</xmax>").replace(
        "<ymax>4</ymax>", f"<ymax>{y1}</ymax>")


NAMED = {"coco": CocoReader(json="coco.json", images="img"), "via": ViaReader(json="via.json", images="img"),
         "cvat": CvatReader(xml="cvat.xml", images="img"), "vott_csv": VottCsvReader(file="vott.csv", images="img"),
         "vott_json": VottJsonReader(file="vott.json", images="img"), "voc": VocReader(images="img")}
SEGMENTS = st.sampled_from(["..", ".", "img", "a.jpg", "outside", "b.jpg", "link.jpg", "", "sub"])
NAMES = st.one_of(st.lists(SEGMENTS, min_size=1, max_size=5).map("/".join),
                  st.sampled_from(["OUTSIDE_ABS", "/etc/hostname", "../outside/b.jpg", "../../outside/b.jpg"]))
NUMBERS = st.sampled_from(["1", "2.5", "30", "nan", "NaN", "inf", "-inf", "1e400", "-3"])


@pytest.mark.parametrize("name", sorted(NAMED))
def test_a_label_file_never_makes_a_reader_read_outside_its_dataset(name, tmp_path_factory):
    """Whatever a label file names (``..``, absolute paths, links out), the reader returns only
    images inside the dataset, or fishbear's own error; coordinates that are not finite numbers
    are an error, never a box and never silently dropped."""
    import math

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(NAMES, st.tuples(NUMBERS, NUMBERS, NUMBERS, NUMBERS))
    def check(image, box):
        base = tmp_path_factory.mktemp(name)
        root, outside = base / "ds", base / "outside"
        (root / "img" / "sub").mkdir(parents=True)
        outside.mkdir()
        for folder in (root / "img", root / "img" / "sub", outside):
            Image.new("RGB", (64, 48), (30, 90, 120)).save(folder / "a.jpg")
        Image.new("RGB", (64, 48)).save(outside / "b.jpg")
        (root / "img" / "link.jpg").symlink_to(outside / "b.jpg")
        image = image.replace("OUTSIDE_ABS", str(outside / "b.jpg"))
        label, text = _label_text(name, image, box)
        (root / label).parent.mkdir(parents=True, exist_ok=True)
        (root / label).write_text(text)
        try:
            catalog = NAMED[name](root)
        except DataError:
            return
        for sample in catalog.splits["train"]:
            assert root.resolve() in sample.image.resolve().parents, (image, sample.image)
            assert all(math.isfinite(v) for v in sample.target.xyxy.ravel()), (box, sample.target.xyxy)
        assert not any(v in ("nan", "NaN", "inf", "-inf", "1e400") for v in box), (box, "was read as a box")

    check()


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


# -- the families of the second probe: names from data, state files, pictures that cannot be fitted -------------
DATA_PATHS = st.lists(st.sampled_from(list("ab./\\ \x00\n-_~:é") + ["..", "out/", "../"]), max_size=8).map("".join)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(DATA_PATHS)
def test_a_path_from_data_stays_inside_its_folder_or_is_refused(relative):
    import tempfile
    from pathlib import Path

    from fishbear.core.containment import inside, is_within, plain_name

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "root"
        root.mkdir()
        (root / "out").symlink_to(Path(folder))  # a link planted in the folder, leading out of it
        try:
            path = inside(root, relative, "the file", "list.csv, line 3")
        except DataError as err:
            assert str(err).startswith("list.csv, line 3: the file")
        else:
            assert is_within(path, root) and root in path.absolute().parents
        try:
            name = plain_name(relative, "the class", "urls.csv, data row 2")
        except DataError as err:
            assert str(err).startswith("urls.csv, data row 2: the class")
        else:
            assert (root / name).parent == root and name not in (".", "..")


STATE_LINES = st.one_of(
    st.text(max_size=40),
    st.dictionaries(st.sampled_from(["seq", "file", "action", "label", "sha256", "undo", "key", "url", "bytes",
                                     "source", "target", "transient", "error"]),
                    st.one_of(st.none(), st.integers(-3, 3), st.booleans(), st.text(max_size=70),
                              st.sampled_from(["a" * 64, "../x", "/etc/passwd", "cat/a.jpg", "remove", "relabel"])),
                    max_size=8).map(json.dumps))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(STATE_LINES, min_size=1, max_size=4))
def test_a_state_file_is_read_or_named_never_another_exception(lines):
    import tempfile
    from pathlib import Path

    from fishbear.data.web_download import DownloadLog
    from fishbear.engine.review.log import DecisionLog, _moves

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        (out / ".fetch").mkdir()
        text = "\n".join(line.replace("\n", " ") for line in lines) + "\n"
        for path, read in ((out / ".fetch" / "downloads.jsonl", lambda p: DownloadLog(out).entries),
                           (out / "decisions.jsonl", lambda p: DecisionLog(p).effective()),
                           (out / "applied.jsonl", _moves)):
            path.write_text(text)
            try:
                read(path)
            except DataError as err:
                assert path.name in str(err), str(err)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.integers(0, 10**8), st.integers(0, 10**8), st.sampled_from(["crop", "pad", "squish"]),
       st.sampled_from([224, [192, 336], 32]))
def test_whether_a_picture_can_be_fitted_is_a_reason_or_none(height, width, resize, size):
    from fishbear.core.geometry import MAX_FIT_PIXELS, as_hw, fit_problem
    from fishbear.engine.deploy.standalone import fit_problem as standalone_fit

    problem = fit_problem(height, width, size, resize)
    assert problem == standalone_fit(height, width, {"input_size": list(as_hw(size)), "resize": resize})
    if problem is None and resize != "squish":
        model_h, model_w = as_hw(size)
        scale = (max if resize == "crop" else min)(model_h / height, model_w / width)
        assert round(height * scale) * round(width * scale) <= MAX_FIT_PIXELS
