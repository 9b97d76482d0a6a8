"""Point datasets as a CSV: ``image,x1,y1[,x2,y2...]`` in pixels.

Points are stored in pixels of the original image; the codec turns them into [-1, 1] after
augmentation. A point outside its image is refused here, naming the file: it is nearly always a
calibration or unit mistake, and training on it would teach the model to point off the frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample
from fishbear.formats.base import LabelFormat, NumbersCsvReader


def check_points_inside(image: Path, points: np.ndarray, source: str) -> None:
    from fishbear.data.boxes import image_size

    width, height = image_size(image)
    outside = [(float(x), float(y)) for x, y in points if not (0 <= x < width and 0 <= y < height)]
    if outside:
        x, y = outside[0]
        raise DataError(f"{source}: point ({x:.1f}, {y:.1f}) lies outside image {image} ({width}x{height}). "
                        "Fix the label (pixel coordinates, origin top-left) or remove the image.")


@dataclass(frozen=True)
class PointsCsvReader(NumbersCsvReader):
    """A CSV with an image column and ``x1,y1,x2,y2...`` columns in pixels; ``names`` names the
    points (default ``point1..K``)."""

    csv: str = "points.csv"
    names: list[str] | None = None
    numbers_are: ClassVar[str] = "every x<i>,y<i> column must hold a number"

    def __call__(self, root: Path) -> Catalog:
        read = self.read_numbers(Path(root), ("x1", "y1"), _point_columns)
        label_file, files = read.label_file, read.images
        points = [v.reshape(-1, 2) for v in read.numbers]
        for line, path, found in zip(read.lines, files, points):
            check_points_inside(path, found, f"{label_file}, line {line}")
        k = len(points[0])
        names = list(self.names or [f"point{i}" for i in range(1, k + 1)])
        if len(names) != k:
            raise DataError(f"data.reader.names has {len(names)} names but {label_file} has {k} point(s) a row.")
        return Catalog(splits={"train": [Sample(p, v) for p, v in zip(files, points)]}, classes=names, kind="points")


def _point_columns(row: dict[str, Any]) -> list[str]:
    count = sum(1 for key in row if key and re.fullmatch(r"x\d+", key))
    return [f"{axis}{i}" for i in range(1, count + 1) for axis in "xy"]


FORMAT = LabelFormat(name="points_csv", kind="points", reader=PointsCsvReader,
                     summary="a CSV of point coordinates in pixels: image,x1,y1[,x2,y2...]",
                     layout="points.csv + images/")
