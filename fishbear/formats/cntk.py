"""VoTT v1's CNTK export: beside each ``<stem>.jpg`` a ``<stem>.bboxes.tsv`` (``xmin ymin xmax
ymax`` a line, tab-separated) and ``<stem>.bboxes.labels.tsv`` (a class a line, same order).
An image without the pair of files has no boxes (the fish project's ``negative/`` folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fishbear.core.errors import DataError
from fishbear.data.boxes import Boxes
from fishbear.data.images import is_image_file
from fishbear.data.label_files import read_label_text
from fishbear.formats.base import BoxReader, LabelFormat


def read_cntk_pair(image: Path) -> Boxes:
    boxes_file = image.with_name(f"{image.stem}.bboxes.tsv")
    labels_file = image.with_name(f"{image.stem}.bboxes.labels.tsv")
    if not boxes_file.is_file():
        return Boxes.empty()
    if not labels_file.is_file():
        raise DataError(f"{boxes_file} has no labels file beside it: expected {labels_file}.")
    lines = [line for line in read_label_text(boxes_file).splitlines() if line.strip()]
    labels = [line.strip() for line in read_label_text(labels_file).splitlines() if line.strip()]
    if len(lines) != len(labels):
        raise DataError(f"{boxes_file} has {len(lines)} box(es) but {labels_file} has {len(labels)} label(s); "
                        "they must pair line by line.")
    rows = []
    for number, (line, label) in enumerate(zip(lines, labels), start=1):
        try:
            xmin, ymin, xmax, ymax = (float(v) for v in line.split())
        except ValueError:
            raise DataError(f"{boxes_file}, line {number}: {line.strip()!r} is not four numbers "
                            "(xmin ymin xmax ymax).") from None
        rows.append((xmin, ymin, xmax, ymax, label, False))
    return Boxes.of(rows)


@dataclass(frozen=True)
class CntkReader(BoxReader):
    """Every image in ``folders`` (relative to the root; e.g. ``[positive, negative]``), or, when
    none are named, every image anywhere under the root (VoTT exports into sub-folders)."""

    folders: list[str] | None = None

    def read(self, root: Path) -> tuple[list[Any], str]:
        entries = []
        for name in self.folders or ["."]:
            folder = root / name
            if not folder.is_dir():
                raise DataError(f"Folder {folder} does not exist; set data.reader.folders.")
            found = folder.rglob("*") if self.folders is None else folder.iterdir()
            entries += [(p, read_cntk_pair(p)) for p in sorted(found) if p.is_file() and is_image_file(p)]
        return entries, str(root)

    def nothing_read(self, root: Path, source: str) -> str:
        return f"No images under {root} in {self.folders or ['.']}."


FORMAT = LabelFormat(name="cntk", kind="detect", reader=CntkReader,
                     summary="VoTT 1.x CNTK export: a .bboxes.tsv and a .bboxes.labels.tsv beside each image",
                     layout="<stem>.jpg + <stem>.bboxes(.labels).tsv")
