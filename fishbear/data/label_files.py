"""Shared parsing for label files: CSV rows with line numbers, and image names resolved to files.

Every label-file reader (tags, points, codes, boxes) reports problems the same way: the file, the
line, what was found and what to do, so no reader grows its own half-checked parser.

**Containment.** An image name read from a label file names a file inside the dataset: a COCO
``file_name`` of ``../../x.jpg``, an absolute path, or a link inside the folder that points out
is refused (:func:`check_inside`), so a label file someone shares cannot make a run read, or
``convert`` copy, any image on the machine. ``allow_outside=true`` in a reader's settings opts
out, for images kept elsewhere on purpose. Files a user puts in a folder tree themselves
(ImageFolder, symlinks included) are not names from a label file and stay readable as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fishbear.core.errors import DataError
from fishbear.data.images import is_image_file


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


def read_label_json(path: Path, setting: str, tool: str) -> Any:
    """A JSON label file's data; a missing file names the ``setting`` that points at it, text
    that is not JSON says to export it again from ``tool``."""
    import json

    try:
        return json.loads(read_label_text(path))
    except FileNotFoundError:
        raise DataError(f"{tool} file {path} does not exist; set {setting} (relative to data.root).") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}); export it again from {tool}.") from None


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
            raise DataError(f"{path}: the header has no column(s) {', '.join(missing)} "
                            f"(it has: {', '.join(header) or 'no header'}). "
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


OUTSIDE_FIX = ("set allow_outside=true in the reader's settings (data.reader.allow_outside=true; for convert, "
               "reader.allow_outside=true) to read images kept elsewhere on purpose")


def is_inside(path: Path, bases: Iterable[Path]) -> bool:
    """Whether ``path``, links followed, lies in one of the ``bases`` folders (links followed too)."""
    resolved = Path(path).resolve()
    for base in bases:
        base = Path(base).resolve()
        if resolved == base or base in resolved.parents:
            return True
    return False


def check_inside(path: Path, bases: tuple[Path, ...], label_file: Path | str, entry: str,
                 allow_outside: bool = False) -> Path:
    """``path`` when it lies inside the dataset (``bases``: its root and image folder) or
    ``allow_outside``; otherwise one :class:`DataError` naming the label file, the entry and the fix."""
    if allow_outside or is_inside(path, bases):
        return path
    raise DataError(f"{label_file}: {entry} names an image at {Path(path).resolve()}, outside the dataset folder "
                    f"{bases[0]}: a label file may only name images inside its dataset. Move the image into "
                    f"{bases[-1]}, or {OUTSIDE_FIX}.")


def find_image(folder: Path, name: str, extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")) -> Path | None:
    """``name`` as given, or with an image extension added (VOC's ``<filename>`` often has none)."""
    direct = folder / name
    if direct.is_file():
        return direct
    for ext in extensions:
        for candidate in (folder / f"{name}{ext}", folder / f"{name}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def locate_image(folder: Path, name: str, label_file: Path | str, root: Path, entry: str,
                 allow_outside: bool = False, fallbacks: tuple[str, ...] = ()) -> Path | None:
    """The image a label file names: ``name`` under ``folder`` (with an image extension added
    when it has none), else its bare file name there (an export that kept another machine's
    folders), else each of ``fallbacks``; None when none exists. A name that reaches outside the
    dataset (``root`` and ``folder``) is refused (:func:`check_inside`), never read."""
    bases = (Path(root), Path(folder))
    found = find_image(folder, name)
    if found is not None:
        return check_inside(found, bases, label_file, f"{entry} {name!r}", allow_outside)
    for other in (Path(name).name, *fallbacks):
        found = find_image(folder, other) if other and other != name else None
        if found is not None:
            return check_inside(found, bases, label_file, f"{entry} {name!r}", allow_outside)
    return None


def named_image(folder: Path, name: str, label_file: Path | str, root: Path, entry: str,
                allow_outside: bool = False) -> Path:
    """:func:`locate_image`, or one error naming the label file, the entry and the folder."""
    image = locate_image(folder, name, label_file, root, entry, allow_outside)
    if image is None:
        raise DataError(f"{label_file}: {entry} names image {name!r}, which is not in {folder}; add it, or set "
                        "data.reader.images to the folder holding it.")
    return image


def listing(folder: Path, limit: int = 8) -> str:
    """A short listing of ``folder`` for error messages."""
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return shown or "(empty)"



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
                   extension: str, root: Path | None = None, allow_outside: bool = False) -> list[Path]:
    """Files for ``(line, name)`` pairs; unknown names are one error listing the first few, and a
    file that is a link out of the dataset (``root`` and ``folder``) is refused."""
    unknown = [(line, name) for line, name in names if name not in lookup]
    if unknown:
        shown = ", ".join(f"line {line}: {name!r}" for line, name in unknown[:5])
        raise DataError(
            f"{label_file} names {len(unknown)} image(s) not found in {folder} (e.g. {shown}); looked for "
            f"'<name>' and '<name>{extension}'. Put the images there, set data.reader.folder / "
            "data.reader.extension, or remove those rows."
        )
    bases = (Path(root if root is not None else folder), Path(folder))
    return [check_inside(lookup[name], bases, label_file, f"line {line}: {name!r}", allow_outside)
            for line, name in names]


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
