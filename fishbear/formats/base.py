"""What a label format is to fishbear: a reader (a folder on disk into a catalog) and, for the box
formats fishbear writes, a writer. Each format is one module of this package declaring a
:class:`LabelFormat` named ``FORMAT``; the registry (``fishbear.formats.FORMATS``) finds them, and
``convert``, ``predict format=``, the ``data/reader`` config group, the fuzz test and the formats
table of the docs all come from it. A new format is its module and its ``conf/data/reader`` file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from fishbear.core.errors import DataError
from fishbear.data.boxes import Boxes, box_catalog
from fishbear.data.catalog import Catalog
from fishbear.data.label_files import image_lookup, locate_image, named_image, read_csv_rows, resolve_images


@dataclass(frozen=True)
class LabelFormat:
    """``name``: the word users type (``data/reader=<name>``, ``src_format=``, ``format=``);
    ``kind``: the kind of labels it holds; ``reader``: the reader class (called with the data
    root); ``writer``: the :class:`BoxLabelWriter` class when fishbear writes the format;
    ``summary``/``layout``: one line each for the docs' table; ``label_files``: whether labels
    come from files a tool wrote (what the fuzz test corrupts), not from folder names."""

    name: str
    kind: str
    reader: type
    summary: str
    layout: str
    writer: type[BoxLabelWriter] | None = None
    label_files: bool = True


@dataclass(frozen=True)
class BoxReader:
    """What every box format's reader shares: ``on_outside`` (``clip`` or ``reject``: a box that
    leaves its image), ``on_swapped`` (``fix`` or ``reject``: corners given the wrong way round)
    and ``frame`` (``upright`` or ``stored``: which way up the format's coordinates take a turned
    photo, :func:`fishbear.data.boxes.frame_of`). A format reads its files into ``(image, boxes[,
    recorded size])`` entries (:meth:`read`); the catalog is made here."""

    on_outside: str = "clip"
    on_swapped: str = "fix"
    frame: str = "upright"

    def __call__(self, root: Path) -> Catalog:
        entries, source = self.read(Path(root))
        if not entries:
            raise DataError(self.nothing_read(Path(root), source))
        return box_catalog(entries, self.on_outside, self.keeps_difficult(), source=source,
                           on_swapped=self.on_swapped, frame=self.frame)[0]

    def read(self, root: Path) -> tuple[list[Any], str]:
        """The format's entries under ``root``, and the file (or folder) they came from, for messages."""
        raise NotImplementedError

    def keeps_difficult(self) -> bool:
        return True

    def nothing_read(self, root: Path, source: str) -> str:
        """The error when the format's files name no image at all: what to check."""
        return f"{source} lists no images."


@dataclass(frozen=True)
class LabelFileBoxReader(BoxReader):
    """A box format whose label file names its images: they are looked for under ``images``
    (relative to the root), and a name reaching outside the dataset is refused unless
    ``allow_outside`` (:func:`fishbear.data.label_files.locate_image`)."""

    images: str = "."
    allow_outside: bool = False

    def image(self, root: Path, name: str, label_file: Path, entry: str) -> Path:
        """The image ``name`` of ``entry`` in ``label_file``, or one error naming all three and the folder."""
        return named_image(root / self.images, name, label_file, root, entry, self.allow_outside)

    def find_image(self, root: Path, name: str, label_file: Path, entry: str,
                   fallbacks: tuple[str, ...] = ()) -> Path | None:
        """As :meth:`image`, with ``fallbacks`` tried too, and None when none is there."""
        return locate_image(root / self.images, name, label_file, root, entry, self.allow_outside, fallbacks)


@dataclass(frozen=True)
class NumbersCsvReader:
    """A CSV naming one image a row (``image_column``; looked up in ``folder`` by name, with or
    without ``extension``; a name reaching outside the dataset refused unless ``allow_outside``)
    and numbers in other columns: what the points and the values readers share. Every number must
    be finite; an error names the file and the line."""

    csv: str = "labels.csv"
    folder: str = "images"
    extension: str = ".jpg"
    image_column: str = "image"
    allow_outside: bool = False

    # what a value that is no number is called in the error, and how to fix it
    numbers_are: ClassVar[str] = "every value must be a number"

    def read_numbers(self, root: Path, required: Sequence[str],
                     columns: Callable[[dict[str, Any]], list[str]]) -> NumberRows:
        """Each row's line, image and numbers (of the ``columns`` the first row gives, in order)."""
        label_file, folder = root / self.csv, root / self.folder
        names: list[str] | None = None
        rows: list[tuple[int, str, np.ndarray]] = []
        for line, row in read_csv_rows(label_file, (self.image_column, *tuple(required))):
            names = columns(row) if names is None else names
            try:
                numbers = [float(row[name]) for name in names]
            except (KeyError, TypeError, ValueError):
                shown = {name: row.get(name) for name in names}
                raise DataError(f"{label_file}, line {line}: {self.numbers_are} (got {shown}). Fix the row or "
                                "remove it.") from None
            if not all(math.isfinite(v) for v in numbers):
                raise DataError(f"{label_file}, line {line}: values must be finite numbers (got {numbers}).")
            rows.append((line, (row[self.image_column] or "").strip(), np.array(numbers, dtype=np.float32)))
        if not rows or names is None:
            raise DataError(f"{label_file} has a header but no rows.")
        files = resolve_images([(line, name) for line, name, _ in rows], image_lookup(folder, self.extension),
                               label_file, folder, self.extension, root, self.allow_outside)
        return NumberRows(label_file, [line for line, _, _ in rows], files, [numbers for _, _, numbers in rows], names)


class NumberRows(NamedTuple):
    """What :meth:`NumbersCsvReader.read_numbers` read: the file, and per row its line, image and numbers."""

    label_file: Path
    lines: list[int]
    images: list[Path]
    numbers: list[np.ndarray]
    columns: list[str]


class BoxLabelWriter:
    """Writes images' boxes in one label format under ``root``, through the command's
    :class:`~fishbear.core.outputs.OutputFiles` (so a label file the user corrected is never
    written over). Two uses:

    - ``images=None`` (``predict format=...``, the pre-labelling loop): label files that refer to
      the images where they are, named by each image's ``key`` (its path under the input folder
      without suffix), with the predictions' scores for the tool to sort by;
    - ``images="copy"|"link"`` (``convert``): a dataset in the format's own layout, images placed
      in :attr:`IMAGES` and labels in :attr:`LABELS`, which the format's reader reads back.
    """

    IMAGES: ClassVar[str] = "images"   # the image folder of the format's own layout
    LABELS: ClassVar[str] = "labels"   # the label folder of the format's own layout

    def __init__(self, root: Path, files: Any, classes: Sequence[str], images: str | None = None,
                 image_prefix: str = "") -> None:
        self.root, self.files, self.classes = Path(root), files, list(classes)
        self.images, self.image_prefix = images, image_prefix
        self.count = 0

    @property
    def placing(self) -> bool:
        return self.images is not None

    def label_dir(self) -> Path:
        return self.root / self.LABELS if self.placing else self.root

    def place(self, image: Path, key: str) -> tuple[Path, str]:
        """The image the labels refer to and its name as the labels write it: placed into the
        layout (convert), or left where it is, named by its key (predict)."""
        if self.placing:
            placed = self.files.place_file(image, self.root / self.IMAGES / image.name, self.images == "link")
            return placed, placed.name
        return image, f"{key}{image.suffix}"

    def add(self, image: Path, key: str, boxes: Boxes, scores: Sequence[float] | None = None) -> dict[str, str]:
        """Record one image's boxes (``scores``: predictions'); returns CSV cells naming what was written."""
        raise NotImplementedError

    def close(self) -> str:
        """Write what spans images; a clause saying what was written."""
        return ""
