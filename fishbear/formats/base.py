"""What a label format is to fishbear: a reader (a folder on disk into a catalog) and, for the box
formats fishbear writes, a writer. Each format is one module of this package declaring a
:class:`LabelFormat` named ``FORMAT``; the registry (``fishbear.formats.FORMATS``) finds them, and
``convert``, ``predict format=``, the ``data/reader`` config group, the fuzz test and the formats
table of the docs all come from it. A new format is its module and its ``conf/data/reader`` file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from fishbear.data.boxes import Boxes


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
