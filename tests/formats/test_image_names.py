"""Label files stay inside their dataset: an image name that reaches outside (``..``, an absolute
path, a link inside the folder that points out) is refused with the file, the entry and the fix,
in every reader that takes names from a label file; ``allow_outside=true`` opts out. Files a user
puts in a folder tree (symlinks included) are the user's choice and stay readable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fishbear.core.errors import DataError
from fishbear.formats.coco import (
    CocoReader,
)
from fishbear.formats.cvat import CvatReader
from fishbear.formats.imagefolder import ImageFolderReader
from fishbear.formats.points_csv import PointsCsvReader
from fishbear.formats.tags_csv import TagCsvReader
from fishbear.formats.values_csv import ValuesCsvReader
from fishbear.formats.via import ViaReader
from fishbear.formats.voc import VocReader, voc_xml
from fishbear.formats.vott_csv import VottCsvReader
from fishbear.formats.vott_json import VottJsonReader


def _label(fmt: str, root: Path, name: str) -> None:
    """A label file of ``fmt`` under ``root`` naming image ``name`` (one fish box)."""
    if fmt == "coco":
        (root / "coco.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": name, "width": 64, "height": 48}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 20, 10], "iscrowd": 0}],
            "categories": [{"id": 1, "name": "fish"}]}))
    elif fmt == "via":
        (root / "via.json").write_text(json.dumps({"k": {"filename": name, "regions": [
            {"shape_attributes": {"name": "rect", "x": 2, "y": 2, "width": 20, "height": 10},
             "region_attributes": {"class": "fish"}}]}}))
    elif fmt == "cvat":
        (root / "cvat.xml").write_text(f'<annotations><image id="0" name="{name}" width="64" height="48"><box '
                                       'label="fish" xtl="2" ytl="2" xbr="20" ybr="10"/></image></annotations>')
    elif fmt == "vott_csv":
        (root / "vott.csv").write_text(f"image,xmin,ymin,xmax,ymax,label\n{name},2,2,20,10,fish\n")
    elif fmt == "vott_json":
        (root / "vott.json").write_text(json.dumps({"assets": {"x": {"asset": {"name": name}, "regions": [
            {"tags": ["fish"], "boundingBox": {"left": 2, "top": 2, "width": 18, "height": 8}}]}}}))
    elif fmt == "voc":
        (root / "Annotations").mkdir(exist_ok=True)
        (root / "Annotations" / "label.xml").write_text(voc_xml(name, 64, 48, [("fish", (2, 2, 20, 10))]))
    elif fmt == "tags":
        (root / "tags.csv").write_text(f"image_name,tags\n{name},fish\n")
    elif fmt == "points":
        (root / "points.csv").write_text(f"image,x1,y1\n{name},5,5\n")
    else:
        (root / "values.csv").write_text(f"image,count\n{name},3\n")


READERS = {
    "coco": lambda **kw: CocoReader(json="coco.json", images="img", **kw),
    "via": lambda **kw: ViaReader(json="via.json", images="img", **kw),
    "cvat": lambda **kw: CvatReader(xml="cvat.xml", images="img", **kw),
    "vott_csv": lambda **kw: VottCsvReader(file="vott.csv", images="img", **kw),
    "vott_json": lambda **kw: VottJsonReader(file="vott.json", images="img", **kw),
    "voc": lambda **kw: VocReader(images="img", **kw),
    "tags": lambda **kw: TagCsvReader(csv="tags.csv", folder="img", **kw),
    "points": lambda **kw: PointsCsvReader(folder="img", **kw),
    "values": lambda **kw: ValuesCsvReader(folder="img", **kw),
}


# readers that look a name up in the folder's listing: a name reaching out is simply not found there
LISTED = {"tags", "points", "values"}


@pytest.fixture
def dataset(tmp_path):
    root, outside = tmp_path / "ds", tmp_path / "outside"
    (root / "img").mkdir(parents=True)
    outside.mkdir()
    Image.new("RGB", (64, 48), (200, 0, 0)).save(outside / "secret.jpg")
    (root / "img" / "inside.jpg").symlink_to(outside / "secret.jpg")  # a link in the folder that points out
    Image.new("RGB", (64, 48)).save(root / "img" / "plain.jpg")
    return root, outside


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


@pytest.mark.parametrize("fmt", sorted(READERS))
@pytest.mark.parametrize("how", ["dotdot", "absolute", "link"])
def test_a_name_reaching_outside_the_dataset_is_refused(fmt, how, dataset):
    root, outside = dataset
    name = {"dotdot": "../../outside/secret.jpg", "absolute": str(outside / "secret.jpg"), "link": "inside.jpg"}[how]
    _label(fmt, root, name)
    if fmt in LISTED and how != "link":
        with pytest.raises(DataError, match="not found in"):
            READERS[fmt]()(root)
        return
    with pytest.raises(DataError, match=r"names an image at .*outside/secret\.jpg, outside the dataset folder .*ds"
                                        r".*allow_outside=true") as refused:
        READERS[fmt]()(root)
    assert any(part in str(refused.value) for part in (".json", ".xml", ".csv")), str(refused.value)
    catalog = READERS[fmt](allow_outside=True)(root)  # the opt-in reads it
    assert [s.image.resolve() for s in catalog.splits["train"]] == [(outside / "secret.jpg").resolve()]


@pytest.mark.parametrize("fmt", ["coco", "via", "vott_csv"])
def test_a_plain_name_inside_the_dataset_still_reads(fmt, dataset):
    root, _ = dataset
    _label(fmt, root, "plain.jpg")
    assert [s.image.name for s in READERS[fmt]()(root).splits["train"]] == ["plain.jpg"]


def test_links_in_a_folder_tree_are_the_users_choice(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for i in range(2):
        Image.new("RGB", (16, 16)).save(elsewhere / f"{i}.jpg")
    for cls in ("a", "b"):
        (tmp_path / "tree" / "train" / cls).mkdir(parents=True)
    (tmp_path / "tree" / "train" / "a" / "x.jpg").symlink_to(elsewhere / "0.jpg")
    (tmp_path / "tree" / "train" / "b" / "y.jpg").symlink_to(elsewhere / "1.jpg")
    catalog = ImageFolderReader()(tmp_path / "tree")
    assert len(catalog.splits["train"]) == 2


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


def test_convert_with_links_never_links_an_outside_file(dataset, tmp_path, capsys):
    from fishbear.convert import main

    root, outside = dataset
    _label("coco", root, "../../outside/secret.jpg")
    with pytest.raises(SystemExit) as stop:
        main([f"src={root}", "src_format=coco", "reader.json=coco.json", "reader.images=img",
              f"dst={tmp_path / 'out'}", "dst_format=voc", "images=link"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "outside the dataset folder" in err and "reader.allow_outside=true" in err
    assert not (tmp_path / "out").exists() or not any(p.is_file() for p in (tmp_path / "out").rglob("*"))
