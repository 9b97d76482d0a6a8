"""Regression values per image in a CSV: ``image,count`` or ``image,age,length``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample
from fishbear.data.label_files import image_lookup, read_csv_rows, resolve_images
from fishbear.formats.base import LabelFormat


@dataclass(frozen=True)
class ValuesCsvReader:
    """``<root>/<csv>`` with an image column and one column per value (``image,count`` or
    ``image,age,length``); the value columns are every column but the image one, or ``columns``.
    Images are looked up in ``<root>/<folder>`` by name, with or without ``extension``."""

    csv: str = "values.csv"
    folder: str = "images"
    extension: str = ".jpg"
    image_column: str = "image"
    columns: list[str] | None = None
    allow_outside: bool = False   # image names in the CSV may be links out of the dataset

    def __call__(self, root: Path) -> Catalog:
        root = Path(root)
        label_file, folder = root / self.csv, root / self.folder
        names: list[str] | None = list(self.columns) if self.columns else None
        rows: list[tuple[int, str, np.ndarray]] = []
        for line, row in read_csv_rows(label_file, (self.image_column, *(names or []))):
            if names is None:
                names = [key for key in row if key and key != self.image_column]
                if not names:
                    raise DataError(f"{label_file}: the header has no value column besides '{self.image_column}'. "
                                    f"Add one (e.g. {self.image_column},count).")
            try:
                numbers = [float(row[name]) for name in names]
            except (TypeError, ValueError):
                shown = {name: row.get(name) for name in names}
                raise DataError(f"{label_file}, line {line}: every value must be a number (got {shown}). "
                                "Fix the row or remove it.") from None
            if not all(math.isfinite(v) for v in numbers):
                raise DataError(f"{label_file}, line {line}: values must be finite numbers (got {numbers}).")
            rows.append((line, (row[self.image_column] or "").strip(), np.array(numbers, dtype=np.float32)))
        if not rows or names is None:
            raise DataError(f"{label_file} has a header but no rows.")
        files = resolve_images([(line, name) for line, name, _ in rows], image_lookup(folder, self.extension),
                               label_file, folder, self.extension, root, self.allow_outside)
        return Catalog(splits={"train": [Sample(path, values) for path, (_, _, values) in zip(files, rows)]},
                       classes=names, kind="regress")


FORMAT = LabelFormat(name="values_csv", kind="regress", reader=ValuesCsvReader,
                     summary="a CSV of values per image: image,count or image,age,length",
                     layout="values.csv + images/")
