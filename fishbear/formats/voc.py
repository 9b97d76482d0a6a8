"""Pascal VOC XML: one ``Annotations/<stem>.xml`` per image, images in ``JPEGImages/``.

Traps of real exports (LabelImg, the fish project): ``<filename>`` without its extension, a
stale Windows ``<path>`` (ignored), files with no ``<object>`` (negatives), images without an XML
(unlabelled, so left out), ``difficult`` flags (kept or dropped as configured).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fishbear.core.errors import DataError
from fishbear.data.boxes import Boxes, image_size, recorded_size
from fishbear.formats.base import BoxLabelWriter, LabelFileBoxReader, LabelFormat


def _number(element: ET.Element, tag: str, source: Path) -> float:
    found = element.find(tag)
    if found is None or found.text is None:
        raise DataError(f"{source}: an <object>'s <bndbox> has no <{tag}>; every box needs xmin, ymin, xmax, ymax.")
    try:
        return float(found.text.strip())
    except ValueError:
        raise DataError(f"{source}: <{tag}>{found.text.strip()}</{tag}> is not a number.") from None


def read_voc_file(path: Path) -> tuple[str, Boxes, tuple[float, float] | None]:
    """The image name the file names, its boxes and the ``(width, height)`` its ``<size>`` records
    (None when it records none, or 0 x 0 as some exporters write)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise DataError(f"{path} is not valid XML ({err}); fix or delete the file.") from None
    filename = (root.findtext("filename") or "").strip() or path.stem
    rows = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DataError(f"{path}: an <object> has no <name>; give every object its class.")
        box = obj.find("bndbox")
        if box is None:
            raise DataError(f"{path}: object '{name}' has no <bndbox>.")
        difficult = (obj.findtext("difficult") or "0").strip() in ("1", "true")
        rows.append((*(_number(box, t, path) for t in ("xmin", "ymin", "xmax", "ymax")), name, difficult))
    return filename, Boxes.of(rows), recorded_size(root.findtext("size/width"), root.findtext("size/height"))


def voc_xml(image_name: str, width: int, height: int, objects: list[tuple[str, tuple[float, float, float, float]]],
            folder: str = "JPEGImages", path: str | None = None) -> str:
    """A Pascal VOC annotation as LabelImg writes it, which LabelImg, CVAT and Roboflow load
    back: ``objects`` are ``(class, (xmin, ymin, xmax, ymax))`` in pixels. Coordinates are
    rounded to whole pixels, as those tools expect."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = image_name
    if path is not None:
        ET.SubElement(root, "path").text = path
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(int(value))
    ET.SubElement(root, "segmented").text = "0"
    for name, box in objects:
        obj = ET.SubElement(root, "object")
        for tag, value in (("name", name), ("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
            ET.SubElement(obj, tag).text = value
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bndbox, tag).text = str(int(round(float(value))))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


@dataclass(frozen=True)
class VocReader(LabelFileBoxReader):
    """``annotations`` and ``images`` are folders under the root. ``keep_difficult=false`` drops
    boxes flagged difficult (VOC's evaluation ignores them); ``on_outside``: ``clip`` or ``reject``;
    ``frame``: the frame of a turned photo's boxes when ``<size>`` cannot tell (``stored``:
    LabelImg's, which shows photos as stored; see :mod:`fishbear.data.boxes`)."""

    annotations: str = "Annotations"
    images: str = "JPEGImages"
    keep_difficult: bool = True
    frame: str = "stored"

    def keeps_difficult(self) -> bool:
        return self.keep_difficult

    def read(self, root: Path) -> tuple[list[Any], str]:
        folder = root / self.annotations
        files = sorted(folder.glob("*.xml")) if folder.is_dir() else []
        if not files:
            raise DataError(f"No VOC annotation files (*.xml) in {folder}; set data.reader.annotations.")
        entries = []
        for path in files:
            filename, boxes, recorded = read_voc_file(path)
            image = self.find_image(root, filename, path, "<filename>", (path.stem,))
            if image is None:
                raise DataError(f"{path} is for image '{filename}', which is not in {root / self.images}; add the image "
                                "or remove the annotation file.")
            entries.append((image, boxes, recorded))
        return entries, str(folder)


class VocWriter(BoxLabelWriter):
    """One XML per image, as LabelImg writes it (LabelImg, CVAT and Roboflow load it back);
    predicting, the XML names the image where it is (``<path>``), for correction."""

    IMAGES = "JPEGImages"
    LABELS = "Annotations"

    def add(self, image: Path, key: str, boxes: Boxes, scores: Sequence[float] | None = None) -> dict[str, str]:
        placed, name = self.place(image, key)
        width, height = image_size(placed)
        objects = [(label, tuple(float(v) for v in box)) for box, label in zip(boxes.xyxy, boxes.labels)]
        xml = (voc_xml(placed.name, width, height, objects) if self.placing
               else voc_xml(placed.name, width, height, objects, folder=placed.parent.name, path=str(placed.resolve())))
        label_key = placed.stem if self.placing else key
        self.count += 1
        return {"voc_xml": str(self.files.write_text(self.label_dir() / f"{label_key}.xml", xml))}

    def close(self) -> str:
        return f"Pascal VOC XML for {self.count} images in {self.label_dir()}" if self.count else ""


FORMAT = LabelFormat(
    name="voc", kind="detect", reader=VocReader, writer=VocWriter,
    summary="Pascal VOC XML (LabelImg, CVAT, Roboflow): one file per image, difficult flags",
    layout="Annotations/<stem>.xml + JPEGImages/")
