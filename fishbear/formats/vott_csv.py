"""VoTT's CSV export (``image,xmin,ymin,xmax,ymax,label``, one box a row)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fishbear.core.errors import DataError
from fishbear.data.boxes import Boxes, box_catalog
from fishbear.data.catalog import Catalog
from fishbear.data.label_files import named_image, read_csv_rows
from fishbear.formats.base import LabelFormat


@dataclass(frozen=True)
class VottCsvReader:
    file: str = "vott-csv-export.csv"
    images: str = "."
    on_outside: str = "clip"
    on_swapped: str = "fix"
    allow_outside: bool = False

    def __call__(self, root: Path) -> Catalog:
        root = Path(root)
        path = root / self.file
        boxes: dict[str, list] = {}
        first_line: dict[str, int] = {}
        for line, row in read_csv_rows(path, ("image", "xmin", "ymin", "xmax", "ymax", "label")):
            try:
                coords = tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (TypeError, ValueError):
                raise DataError(f"{path}, line {line}: xmin, ymin, xmax, ymax must be numbers.") from None
            boxes.setdefault(row["image"].strip(), []).append((*coords, row["label"].strip(), False))
            first_line.setdefault(row["image"].strip(), line)
        entries = [(named_image(root / self.images, name, path, root, f"line {first_line[name]}", self.allow_outside),
                    Boxes.of(rows)) for name, rows in boxes.items()]
        return box_catalog(entries, self.on_outside, source=str(path), on_swapped=self.on_swapped)[0]


FORMAT = LabelFormat(name="vott_csv", kind="detect", reader=VottCsvReader,
                     summary="VoTT's CSV export: image,xmin,ymin,xmax,ymax,label a row",
                     layout="vott-csv-export.csv + images")
