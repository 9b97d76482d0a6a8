"""VoTT's CSV export (``image,xmin,ymin,xmax,ymax,label``, one box a row)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fishbear.core.errors import DataError
from fishbear.data.boxes import Boxes
from fishbear.data.label_files import read_csv_rows
from fishbear.formats.base import LabelFileBoxReader, LabelFormat


@dataclass(frozen=True)
class VottCsvReader(LabelFileBoxReader):
    file: str = "vott-csv-export.csv"

    def read(self, root: Path) -> tuple[list[Any], str]:
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
        return [(self.image(root, name, path, f"line {first_line[name]}"), Boxes.of(rows))
                for name, rows in boxes.items()], str(path)


FORMAT = LabelFormat(name="vott_csv", kind="detect", reader=VottCsvReader,
                     summary="VoTT's CSV export: image,xmin,ymin,xmax,ymax,label a row",
                     layout="vott-csv-export.csv + images")
