"""Multi-label CSVs: ``image_name,tags`` with the tags in one space-separated field (Planet's
``train_v2.csv``); the tag vocabulary is every tag the CSV uses, sorted."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample
from fishbear.data.label_files import image_lookup, read_csv_rows, resolve_images
from fishbear.formats.base import LabelFormat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TagCsvReader:
    """``csv`` and ``folder`` are relative to the data root; an image is ``<folder>/<name><extension>``
    (or ``<folder>/<name>`` when the CSV gives the extension)."""

    csv: str = "train_v2.csv"
    folder: str = "train-jpg"
    extension: str = ".jpg"
    image_column: str = "image_name"
    tags_column: str = "tags"
    delimiter: str = " "
    allow_outside: bool = False   # image names in the CSV may be links out of the dataset

    def __call__(self, root: Path) -> Catalog:
        root = Path(root)
        label_file, folder = root / self.csv, root / self.folder
        rows: list[tuple[int, str, list[str]]] = []
        for line, row in read_csv_rows(label_file, (self.image_column, self.tags_column)):
            name = (row[self.image_column] or "").strip()
            tags = [t for t in (row[self.tags_column] or "").split(self.delimiter) if t.strip()]
            if not name:
                raise DataError(f"{label_file}, line {line}: the {self.image_column} field is empty.")
            if not tags:
                raise DataError(f"{label_file}, line {line}: image {name!r} has an empty tag list. Every image "
                                "needs at least one tag (a tag for 'nothing' is a tag too); fix or remove the row.")
            rows.append((line, name, [t.strip() for t in tags]))
        if not rows:
            raise DataError(f"{label_file} has a header but no rows.")
        files = resolve_images([(line, name) for line, name, _ in rows], image_lookup(folder, self.extension),
                               label_file, folder, self.extension, root, self.allow_outside)
        repeated = [(line, name) for line, name, tags in rows if len(set(tags)) < len(tags)]
        if repeated:  # Planet's real CSV: 73 rows list cultivation or blow_down twice
            log.warning("%s: %d row(s) list a tag twice (e.g. line %d, %s); each tag counts once.",
                        label_file, len(repeated), *repeated[0])
        classes = sorted({tag for _, _, tags in rows for tag in tags})
        index = {tag: i for i, tag in enumerate(classes)}
        samples = [Sample(path, tuple(sorted(index[t] for t in set(tags)))) for path, (_, _, tags) in zip(files, rows)]
        return Catalog(splits={"train": samples}, classes=classes, kind="multilabel")


FORMAT = LabelFormat(name="tags_csv", kind="multilabel", reader=TagCsvReader,
                     summary="a CSV of space-separated tags per image (Planet)",
                     layout="train_v2.csv + train-jpg/")
