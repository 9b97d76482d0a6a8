"""Shared parsing for label files: CSV rows with line numbers, and image names resolved to files.

Every label-file reader (tags, points, codes) reports problems the same way: the file, the line,
what was found and what to do, so no reader grows its own half-checked parser.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fishbear.data.images import is_image_file
from fishbear.errors import DataError


def read_label_text(path: Path) -> str:
    """A label file's text (UTF-8, with or without a byte-order mark); a file in another encoding
    or with binary garbage is a :class:`DataError` naming it. ``FileNotFoundError`` passes, for
    the caller to say which setting names the file."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); save or export it as UTF-8, "
                        "or it is damaged.") from None


@contextmanager
def structure_of(path: Path, what: str) -> Iterator[None]:
    """Inside, a label file whose structure is not what its format promises (a field of the wrong
    type, a list where an object belongs, a missing key no check above named) becomes one
    :class:`DataError` naming the file, instead of a KeyError from deep in a reader."""
    try:
        yield
    except DataError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise DataError(f"{path}: not a valid {what} ({type(err).__name__}: {err}); export it again, or fix the "
                        "file.") from None


def read_csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for each data row of a CSV with a header holding ``required``."""
    if not path.is_file():
        raise DataError(f"Label file {path} does not exist; set data.reader.csv to the CSV's path under data.root.")
    with io.StringIO(read_label_text(path), newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames or []
        except csv.Error as err:
            raise DataError(f"{path}, line 1: not a valid CSV header ({err}).") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}: the header has no column(s) {', '.join(missing)} (it has: {', '.join(header) or 'no header'}). "
                            f"Name the columns {', '.join(required)}, or set the reader's column names.")
        try:
            for row in reader:
                short = [c for c in required if row.get(c) is None]
                if short:  # a row cut short: fewer fields than the header names
                    raise DataError(f"{path}, line {reader.line_num}: the row has no value for {', '.join(short)} "
                                    f"(it has {len([v for v in row.values() if v is not None])} field(s)); "
                                    "complete or delete the row.")
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
    lines = read_label_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if blank or not lines:
        raise DataError(f"{path}: line(s) {blank or [1]} are empty; every line up to the last must name the class "
                        "with that pixel value.")
    return [line.strip() for line in lines]
