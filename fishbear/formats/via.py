"""VGG Image Annotator (VIA) JSON: 1.x exports (a dict keyed ``<filename><filesize>``, regions a
dict keyed ``"0"``, ``"1"``...) and 2.x projects (``_via_img_metadata``, regions a list). Rect
regions are boxes; polygons and polylines become their bounding boxes; circles and ellipses the
boxes around them. The class is a region attribute (``label_attribute``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fishbear.core.errors import DataError
from fishbear.data.boxes import Boxes
from fishbear.data.label_files import read_label_json, structure_of
from fishbear.formats.base import LabelFileBoxReader, LabelFormat


def region_box(shape: dict[str, Any], where: str) -> tuple[float, float, float, float]:
    kind = shape.get("name")
    try:
        if kind == "rect":
            x, y = float(shape["x"]), float(shape["y"])
            return x, y, x + float(shape["width"]), y + float(shape["height"])
        if kind in ("polygon", "polyline"):
            xs, ys = shape["all_points_x"], shape["all_points_y"]
            return float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))
        if kind in ("circle", "ellipse"):
            cx, cy = float(shape["cx"]), float(shape["cy"])
            rx = float(shape.get("r", shape.get("rx")))
            ry = float(shape.get("r", shape.get("ry")))
            return cx - rx, cy - ry, cx + rx, cy + ry
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{where}: a {kind} region lacks or garbles its coordinates ({err!r}).") from None
    raise DataError(f"{where}: region shape {kind!r} cannot be a box (use rect, polygon, polyline, circle or ellipse).")


@dataclass(frozen=True)
class ViaReader(LabelFileBoxReader):
    """``json`` and ``images`` are under the root. A region without ``label_attribute`` takes
    ``default_label`` when set, else is an error naming the file and the attribute."""

    json: str = "via_region_data.json"
    label_attribute: str = "class"
    default_label: str | None = None

    def read(self, root: Path) -> tuple[list[Any], str]:
        path = root / self.json
        data = read_label_json(path, "data.reader.json", "VIA")
        entries_json = data.get("_via_img_metadata", data) if isinstance(data, dict) else None
        if not isinstance(entries_json, dict):
            raise DataError(f"{path}: expected a VIA export (an object of images), found {type(data).__name__}.")
        with structure_of(path, "VIA export"):
            entries = []
            for key, entry in entries_json.items():
                if not isinstance(entry, dict) or "filename" not in entry:
                    raise DataError(f"{path}: entry {key!r} has no 'filename'; is this a VIA region export?")
                image = self.find_image(root, str(entry["filename"]), path, f"entry {key!r}")
                if image is None:
                    raise DataError(f"{path}: image {entry['filename']!r} is not in {root / self.images}; "
                                    "set data.reader.images to the image folder.")
                regions = entry.get("regions") or []
                regions = list(regions.values()) if isinstance(regions, dict) else list(regions)
                rows = []
                for i, region in enumerate(regions):
                    where = f"{path}, image {entry['filename']}, region {i}"
                    label = (region.get("region_attributes") or {}).get(self.label_attribute, self.default_label)
                    if isinstance(label, dict):  # VIA 2 checkbox attributes: {"fish": true}
                        label = next((k for k, v in label.items() if v), None)
                    if not label:
                        raise DataError(f"{where}: no region attribute {self.label_attribute!r} to take the class from. "
                                        "Set data.reader.label_attribute to the attribute holding the class, or "
                                        "data.reader.default_label for single-class projects.")
                    rows.append((*region_box(region.get("shape_attributes") or {}, where), str(label), False))
                entries.append((image, Boxes.of(rows)))
        return entries, str(path)


FORMAT = LabelFormat(name="via", kind="detect", reader=ViaReader,
                     summary="VGG Image Annotator 1.x/2.x JSON: rect regions, other shapes as their boxes",
                     layout="via_region_data.json + images")
