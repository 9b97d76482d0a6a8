"""Shared parsing for label files: CSV rows with line numbers, and image names resolved to files.

Every label-file reader (tags, points, codes) reports problems the same way: the file, the line,
what was found and what to do, so no reader grows its own half-checked parser.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from fishbear.data.images import is_image_file
from fishbear.errors import DataError


def read_csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for each data row of a CSV with a header holding ``required``."""
    if not path.is_file():
        raise DataError(f"Label file {path} does not exist; set data.reader.csv to the CSV's path under data.root.")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}: the header has no column(s) {', '.join(missing)} (it has: {', '.join(header) or 'no header'}). "
                            f"Name the columns {', '.join(required)}, or set the reader's column names.")
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as err:
            raise DataError(f"{path}, line {reader.line_num}: not valid CSV ({err}).") from None


def image_lookup(folder: Path, extension: str) -> dict[str, Path]:
    """Image files of ``folder`` by name, with and without extension: CSVs name images either
    way (Planet's ``train_0`` for ``train-jpg/train_0.jpg``)."""
    if not folder.is_dir():
        raise DataError(f"Image folder {folder} does not exist; set data.reader.folder to the folder that holds the images.")
    files: dict[str, Path] = {}
    for path in folder.iterdir():
        if path.is_file() and is_image_file(path):
            files[path.name] = path
            if path.suffix.lower() == extension.lower():
                files.setdefault(path.stem, path)
    return files


def resolve_images(names: list[tuple[int, str]], lookup: dict[str, Path], label_file: Path, folder: Path,
                   extension: str) -> list[Path]:
    """Files for ``(line, name)`` pairs; unknown names are one error listing the first few."""
    unknown = [(line, name) for line, name in names if name not in lookup]
    if unknown:
        shown = ", ".join(f"line {line}: {name!r}" for line, name in unknown[:5])
        raise DataError(
            f"{label_file} names {len(unknown)} image(s) not found in {folder} (e.g. {shown}); looked for "
            f"'<name>' and '<name>{extension}'. Put the images there, set data.reader.folder / "
            "data.reader.extension, or remove those rows."
        )
    return [lookup[name] for _, name in names]


def read_codes(path: Path) -> list[str]:
    """Class names, one a line, line i = pixel value i (fastai's ``codes.txt``)."""
    if not path.is_file():
        raise DataError(f"Codes file {path} does not exist. Write one class name a line (line 1 = pixel value 0), "
                        "or set data.reader.codes to its path under data.root.")
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if blank or not lines:
        raise DataError(f"{path}: line(s) {blank or [1]} are empty; every line up to the last must name the class "
                        "with that pixel value.")
    return [line.strip() for line in lines]
