"""Point datasets as a CSV: ``image,x1,y1[,x2,y2...]`` in pixels.

Points are stored in pixels of the original image; the codec turns them into [-1, 1] after
augmentation. A point outside its image is refused here, naming the file: it is nearly always a
calibration or unit mistake, and training on it would teach the model to point off the frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample
from fishbear.data.label_files import image_lookup, read_csv_rows, resolve_images
from fishbear.formats.base import LabelFormat


def check_points_inside(image: Path, points: np.ndarray, source: str) -> None:
    from fishbear.data.boxes import image_size

    width, height = image_size(image)
    outside = [(float(x), float(y)) for x, y in points if not (0 <= x < width and 0 <= y < height)]
    if outside:
        x, y = outside[0]
        raise DataError(f"{source}: point ({x:.1f}, {y:.1f}) lies outside image {image} ({width}x{height}). "
                        "Fix the label (pixel coordinates, origin top-left) or remove the image.")


@dataclass(frozen=True)
class PointsCsvReader:
    """A CSV with an image column and ``x1,y1,x2,y2...`` columns in pixels; ``names`` names the
    points (default ``point1..K``)."""

    csv: str = "points.csv"
    folder: str = "images"
    extension: str = ".jpg"
    image_column: str = "image"
    names: list[str] | None = None
    allow_outside: bool = False   # image names in the CSV may be links out of the dataset

    def __call__(self, root: Path) -> Catalog:
        root = Path(root)
        label_file, folder = root / self.csv, root / self.folder
        rows: list[tuple[int, str, np.ndarray]] = []
        for line, row in read_csv_rows(label_file, (self.image_column, "x1", "y1")):
            count = sum(1 for key in row if key and re.fullmatch(r"x\d+", key))
            try:
                values = [float(row[f"{axis}{i}"]) for i in range(1, count + 1) for axis in "xy"]
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{label_file}, line {line}: every x<i>,y<i> column must hold a number "
                                f"(got {[row.get(k) for k in row if k != self.image_column]}).") from None
            if not all(np.isfinite(values)):
                raise DataError(f"{label_file}, line {line}: point coordinates must be finite numbers (got {values}).")
            rows.append((line, row[self.image_column].strip(), np.array(values, dtype=np.float32).reshape(-1, 2)))
        if not rows:
            raise DataError(f"{label_file} has a header but no rows.")
        files = resolve_images([(line, name) for line, name, _ in rows], image_lookup(folder, self.extension),
                               label_file, folder, self.extension, root, self.allow_outside)
        for path, (line, _, points) in zip(files, rows):
            check_points_inside(path, points, f"{label_file}, line {line}")
        k = len(rows[0][2])
        names = list(self.names or [f"point{i}" for i in range(1, k + 1)])
        if len(names) != k:
            raise DataError(f"data.reader.names has {len(names)} names but {label_file} has {k} point(s) a row.")
        return Catalog(splits={"train": [Sample(p, r[2]) for p, r in zip(files, rows)]}, classes=names, kind="points")


FORMAT = LabelFormat(name="points_csv", kind="points", reader=PointsCsvReader,
                     summary="a CSV of point coordinates in pixels: image,x1,y1[,x2,y2...]",
                     layout="points.csv + images/")
