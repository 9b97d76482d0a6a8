"""CVAT for images 1.1 XML (``annotations.xml``): ``<image name width height>`` elements holding
``<box label xtl ytl xbr ybr>`` (corner pixels), ``<polygon>``/``<polyline>`` (``points="x,y;x,y"``)
and ``<ellipse cx cy rx ry>``; polygons, polylines and ellipses become their bounding boxes, as
the VIA reader does. ``<meta>`` lists the labels; an image without shapes is a negative.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fishbear.core.errors import DataError
from fishbear.data.boxes import Boxes, recorded_size
from fishbear.formats.base import LabelFileBoxReader, LabelFormat


def _corners(a: dict[str, str]) -> tuple[float, float, float, float]:
    return float(a["xtl"]), float(a["ytl"]), float(a["xbr"]), float(a["ybr"])


def _around_points(a: dict[str, str]) -> tuple[float, float, float, float]:
    points = [tuple(float(v) for v in pair.split(",")) for pair in a["points"].split(";")]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _around_ellipse(a: dict[str, str]) -> tuple[float, float, float, float]:
    cx, cy, rx, ry = (float(a[k]) for k in ("cx", "cy", "rx", "ry"))
    return cx - rx, cy - ry, cx + rx, cy + ry


# each CVAT shape and the box around it
SHAPE_BOXES = {"box": _corners, "polygon": _around_points, "polyline": _around_points, "points": _around_points,
               "ellipse": _around_ellipse}


def shape_box(element: ET.Element, where: str) -> tuple[float, float, float, float]:
    try:
        return SHAPE_BOXES[element.tag](element.attrib)
    except (KeyError, ValueError, IndexError) as err:
        raise DataError(f"{where}: a <{element.tag}> lacks or garbles its coordinates ({err!r}).") from None


@dataclass(frozen=True)
class CvatReader(LabelFileBoxReader):
    """``xml`` and ``images`` under the root. CVAT shows photos upright since 2022 (``frame``);
    ``<image width height>`` tells which way a file's boxes are."""

    xml: str = "annotations.xml"
    images: str = "images"

    def read(self, root: Path) -> tuple[list[Any], str]:
        path = root / self.xml
        if not path.is_file():
            raise DataError(f"No CVAT annotations at {path}; set data.reader.xml (relative to data.root).")
        try:
            tree = ET.parse(path).getroot()
        except ET.ParseError as err:
            raise DataError(f"{path} is not valid XML ({err}); export it again.") from None
        entries = []
        for image in tree.iter("image"):
            name = image.get("name")
            if not name:
                raise DataError(f"{path}: an <image> has no name attribute.")
            where = f"{path}, image {name}"
            rows = []
            for shape in image:
                if shape.tag not in SHAPE_BOXES:
                    continue
                label = shape.get("label")
                if not label:
                    raise DataError(f"{where}: a <{shape.tag}> has no label.")
                rows.append((*shape_box(shape, where), label, False))
            entries.append((self.image(root, name, path, f"<image id={image.get('id')!r}>"), Boxes.of(rows),
                            recorded_size(image.get("width"), image.get("height"))))
        return entries, str(path)

    def nothing_read(self, root: Path, source: str) -> str:
        return f"{source} lists no <image>: is it a CVAT *video* export? Export as 'CVAT for images 1.1'."


FORMAT = LabelFormat(name="cvat", kind="detect", reader=CvatReader,
                     summary="CVAT for images 1.1 XML: boxes, and polygons, polylines and ellipses as their boxes",
                     layout="annotations.xml + images/")
