"""YOLO txt (Ultralytics, Darknet): ``images/<subset>/<stem>.jpg`` and ``labels/<subset>/<stem>.txt``,
one box a line, ``class x_center y_center width height``, all normalised to 0-1 by the image's
size; ``class`` indexes ``names`` in the dataset yaml (0-based).

Traps of real exports (Ultralytics' coco128): the yaml's ``path`` is its uploader's folder (the
reader ignores it and reads under ``data.root``; ``path`` overrides), an image without a label
file has no objects (a negative, as YOLO's convention says), a label file without an image is
reported (a warning naming them) and left out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fishbear.core.errors import DataError
from fishbear.data.boxes import Boxes, image_geometry, image_size
from fishbear.data.images import is_image_file
from fishbear.data.label_files import read_label_text
from fishbear.formats.base import BoxLabelWriter, BoxReader, LabelFormat

log = logging.getLogger(__name__)


def yolo_names(path: Path) -> list[str]:
    """Class names by index from a dataset yaml (``names`` as a list or an index -> name map)."""
    try:
        data = yaml.safe_load(read_label_text(path)) or {}
    except yaml.YAMLError as err:
        raise DataError(f"{path} is not valid YAML ({err}).") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise DataError(f"{path} has no 'names' (a list, or a map from class index to name).")


def read_yolo_file(path: Path, names: list[str], width: int, height: int) -> Boxes:
    rows = []
    for number, line in enumerate(read_label_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            index = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:5])
        except (ValueError, IndexError):
            raise DataError(f"{path}, line {number}: '{line.strip()}' is not 'class x_center y_center width height'.") from None
        if not 0 <= index < len(names):
            raise DataError(f"{path}, line {number}: class {index} is not in the yaml's names (0-{len(names) - 1}).")
        rows.append(((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height,
                     names[index], False))
    return Boxes.of(rows)


@dataclass(frozen=True)
class YoloReader(BoxReader):
    """``yaml`` (class names), ``images`` and ``labels`` folders under the root. Ultralytics
    scales by the upright size (``frame``); ``stored``: LabelImg's YOLO mode, darknet."""

    yaml: str = "data.yaml"
    images: str = "images/train"
    labels: str = "labels/train"

    def read(self, root: Path) -> tuple[list[Any], str]:
        if not (root / self.yaml).is_file():
            raise DataError(f"No YOLO dataset yaml at {root / self.yaml}; set data.reader.yaml (it gives the class names).")
        names = yolo_names(root / self.yaml)
        images, labels = root / self.images, root / self.labels
        if not images.is_dir():
            raise DataError(f"No image folder {images}; set data.reader.images (relative to data.root).")
        found = sorted(p for p in images.iterdir() if is_image_file(p))
        stems = {p.stem for p in found}
        orphans = sorted(p.name for p in labels.glob("*.txt") if p.stem not in stems) if labels.is_dir() else []
        if orphans:
            log.warning("%s: %d label file(s) have no image and are left out: %s", labels, len(orphans),
                        ", ".join(orphans[:5]))
        entries = []
        for image in found:
            label = labels / f"{image.stem}.txt"
            if label.is_file():
                upright, stored, _ = image_geometry(image)
                entries.append((image, read_yolo_file(label, names, *(stored if self.frame == "stored" else upright))))
            else:
                entries.append((image, Boxes.empty()))  # no label file: no objects
        return entries, str(labels)

    def nothing_read(self, root: Path, source: str) -> str:
        return f"No images in {root / self.images}; set data.reader.images (relative to data.root)."


def yolo_lines(boxes: Boxes, classes: list[str], width: int, height: int) -> str:
    """A YOLO label file's text for ``boxes`` of an image of ``width`` x ``height``."""
    lines = []
    for (x0, y0, x1, y1), label in zip(np.asarray(boxes.xyxy, dtype=float).reshape(-1, 4), boxes.labels):
        lines.append(f"{classes.index(label)} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
                     f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


class YoloWriter(BoxLabelWriter):
    """A txt per image (an empty one for an image without boxes: no objects) and ``data.yaml``
    with the class names; placed images make Ultralytics' layout, which ``yolo train`` reads."""

    IMAGES = "images/train"
    LABELS = "labels/train"

    def add(self, image: Path, key: str, boxes: Boxes, scores: Sequence[float] | None = None) -> dict[str, str]:
        placed, _ = self.place(image, key)
        width, height = image_size(placed)
        label_key = placed.stem if self.placing else key
        self.count += 1
        path = self.files.write_text(self.label_dir() / f"{label_key}.txt", yolo_lines(boxes, self.classes, width, height))
        return {"yolo_txt": str(path)}

    def close(self) -> str:
        if not self.count:
            return ""
        names = {"names": dict(enumerate(self.classes))}
        layout = {"path": ".", "train": self.IMAGES, "val": self.IMAGES} if self.placing else {}
        self.files.write_text(self.root / "data.yaml", yaml.safe_dump({**layout, **names}, sort_keys=False))
        return f"YOLO txt for {self.count} images (names in data.yaml) in {self.root}"


FORMAT = LabelFormat(
    name="yolo", kind="detect", reader=YoloReader, writer=YoloWriter,
    summary="YOLO txt (Ultralytics, Darknet): class and normalised centre and size a line, names in a yaml",
    layout="data.yaml + images/<subset>/ + labels/<subset>/<stem>.txt")
