"""Every picture read as it looks, everywhere: one decoding rule for every mode and orientation
(fishbear's and the standalone predictor's copy agree), and the boxes of a turned photo read in the
frame the labelling tool drew them in."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps


def _with_orientation(picture: Image.Image, orientation: int, path: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    picture.save(path, exif=exif, quality=98) if path.suffix == ".jpg" else picture.save(path, exif=exif)
    return path


def _turned_photo(root: Path) -> tuple[Path, list[float]]:
    """A 60 x 40 photo stored on its side (EXIF 6: shown 40 wide, 60 high) with a box that, on
    the upright picture, is (4, 10, 20, 30)."""
    upright = Image.new("RGB", (40, 60), (20, 20, 20))
    stored = upright.transpose(Image.Transpose.ROTATE_90)   # what the camera saved: 60 x 40
    images = root / "JPEGImages"
    images.mkdir(parents=True)
    _with_orientation(stored, 6, images / "photo.jpg")
    return images / "photo.jpg", [4.0, 10.0, 20.0, 30.0]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_box_on_the_stored_picture_lands_where_the_picture_shows_it(orientation):
    from fishbear.data.boxes import upright_boxes

    width, height = 40, 24
    stored = np.zeros((height, width), np.uint8)
    box = np.array([[5, 3, 17, 11]], dtype=np.float32)
    stored[3:11, 5:17] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="PNG", exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(buffer)))
    ys, xs = np.nonzero(upright)
    expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert upright_boxes(box, orientation, width, height)[0].tolist() == expected


def test_voc_boxes_are_read_in_the_frame_their_size_names(tmp_path):
    from fishbear.data.boxes import upright_boxes
    from fishbear.formats.voc import VocReader, voc_xml

    photo, box = _turned_photo(tmp_path)
    with Image.open(photo) as opened:
        assert opened.size == (60, 40)
    # LabelImg shows the photo as stored (60 x 40) and writes that size and frame
    inverse = {6: 8}[6]  # the stored frame of an upright box: the turn undone
    stored_box = upright_boxes(np.array([box], np.float32), inverse, 40, 60)[0].tolist()
    (tmp_path / "Annotations").mkdir()
    for name, (size, drawn) in {"labelimg": ((60, 40), stored_box), "cvat_like": ((40, 60), box)}.items():
        (tmp_path / "Annotations" / "photo.xml").write_text(voc_xml("photo.jpg", *size, [("fish", tuple(drawn))]))
        sample = VocReader()(tmp_path).splits["train"][0]
        assert np.allclose(sample.target.xyxy[0], box), name   # the same upright box either way
    # no size to go by: the format's frame decides (stored, LabelImg's), or the setting
    (tmp_path / "Annotations" / "photo.xml").write_text(
        voc_xml("photo.jpg", 0, 0, [("fish", tuple(stored_box))]))
    assert np.allclose(VocReader()(tmp_path).splits["train"][0].target.xyxy[0], box)
    (tmp_path / "Annotations" / "photo.xml").write_text(voc_xml("photo.jpg", 0, 0, [("fish", tuple(box))]))
    assert np.allclose(VocReader(frame="upright")(tmp_path).splits["train"][0].target.xyxy[0], box)


def test_yolo_boxes_are_scaled_by_the_upright_size_as_ultralytics_does(tmp_path):
    from fishbear.formats.yolo import YoloReader

    photo, box = _turned_photo(tmp_path / "src")
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    photo.rename(tmp_path / "images" / "train" / "photo.jpg")
    (tmp_path / "data.yaml").write_text(json.dumps({"names": ["fish"]}))
    x0, y0, x1, y1 = box
    cx, cy, w, h = (x0 + x1) / 2 / 40, (y0 + y1) / 2 / 60, (x1 - x0) / 40, (y1 - y0) / 60
    (tmp_path / "labels" / "train" / "photo.txt").write_text(f"0 {cx} {cy} {w} {h}\n")
    sample = YoloReader()(tmp_path).splits["train"][0]
    assert np.allclose(sample.target.xyxy[0], box, atol=1e-3)   # not clipped by the stored 60 x 40
