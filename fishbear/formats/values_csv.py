"""Regression values per image in a CSV: ``image,count`` or ``image,age,length``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample
from fishbear.formats.base import LabelFormat, NumbersCsvReader


@dataclass(frozen=True)
class ValuesCsvReader(NumbersCsvReader):
    """``<root>/<csv>`` with an image column and one column per value (``image,count`` or
    ``image,age,length``); the value columns are every column but the image one, or ``columns``.
    Images are looked up in ``<root>/<folder>`` by name, with or without ``extension``."""

    csv: str = "values.csv"
    columns: list[str] | None = None

    def __call__(self, root: Path) -> Catalog:
        read = self.read_numbers(Path(root), list(self.columns or []), self._columns)
        return Catalog(splits={"train": [Sample(path, v) for path, v in zip(read.images, read.numbers)]},
                       classes=read.columns, kind="regress")

    def _columns(self, row: dict[str, Any]) -> list[str]:
        if self.columns:
            return list(self.columns)
        names = [key for key in row if key and key != self.image_column]
        if not names:
            raise DataError(f"{self.csv}: the header has no value column besides '{self.image_column}'. "
                            f"Add one (e.g. {self.image_column},count).")
        return names


FORMAT = LabelFormat(name="values_csv", kind="regress", reader=ValuesCsvReader,
                     summary="a CSV of values per image: image,count or image,age,length",
                     layout="values.csv + images/")
