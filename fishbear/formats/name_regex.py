"""Labels in file names (fastai's ``RegexLabeller``): Oxford pets, Kaggle cats and dogs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample
from fishbear.data.images import is_image_file
from fishbear.data.label_files import listing
from fishbear.formats.base import LabelFormat


@dataclass(frozen=True)
class NameRegexReader:
    """Label in the file name (fastai's ``RegexLabeller``): Oxford pets ``great_pyrenees_173.jpg``
    with ``^(.+)_\\d+\\.jpg$``, Kaggle cats/dogs ``cat.12.jpg`` with ``^(cat|dog)\\.\\d+\\.jpg$``.

    ``group`` is the capture group (number or name) that holds the class. All images come as
    ``train``; the data module holds out the validation fraction. A file the pattern does not
    match is an error (``skip_unmatched=true`` leaves such files out and counts them).
    ``case_labels`` relabels by the case of the label's first letter: Oxford pets' cat breeds are
    capitalised, so ``{upper: cat, lower: dog}`` turns 37 breeds into fastai's cats-vs-dogs.
    """

    pattern: str
    folder: str = "."
    group: int | str = 1
    recursive: bool = False
    skip_unmatched: bool = False
    case_labels: dict[str, str] | None = None

    def _label(self, captured: str) -> str:
        if not self.case_labels:
            return captured
        case = "upper" if captured[:1].isupper() else "lower"
        try:
            return self.case_labels[case]
        except KeyError:
            raise DataError(f"data.reader.case_labels needs both 'upper' and 'lower' keys, got "
                            f"{sorted(self.case_labels)}") from None

    def __call__(self, root: Path) -> Catalog:
        folder = Path(root) / self.folder
        if not folder.is_dir():
            raise DataError(f"Image folder {folder} does not exist; set data.reader.folder to the folder "
                            f"under {root} that holds the images (it holds: {listing(Path(root))}).")
        try:
            regex = re.compile(self.pattern)
        except re.error as err:
            raise DataError(f"data.reader.pattern={self.pattern!r} is not a valid regular expression: {err}") from None
        found = folder.rglob("*") if self.recursive else folder.iterdir()
        files = sorted(p for p in found if p.is_file() and is_image_file(p))
        if not files:
            raise DataError(f"{folder} holds no image files (it holds: {listing(folder)}).")
        labelled, unmatched = [], []
        for path in files:
            match = regex.search(path.name)
            if match is None or match.group(self.group) is None:
                unmatched.append(path)
            else:
                labelled.append((path, self._label(match.group(self.group))))
        if not labelled:
            examples = ", ".join(p.name for p in files[:5])
            raise DataError(
                f"data.reader.pattern={self.pattern!r} matches none of the {len(files)} image files in {folder} "
                f"(e.g. {examples}). Give a pattern whose group {self.group} captures the class in those names."
            )
        if unmatched and not self.skip_unmatched:
            examples = ", ".join(p.name for p in unmatched[:5])
            raise DataError(
                f"{len(unmatched)} of {len(files)} image files in {folder} do not match "
                f"data.reader.pattern={self.pattern!r} (e.g. {examples}). Fix the pattern, or set "
                "data.reader.skip_unmatched=true to leave them out."
            )
        classes = sorted({label for _, label in labelled})
        index = {name: i for i, name in enumerate(classes)}
        samples = [Sample(path, index[label]) for path, label in labelled]
        skipped = [(p, "file name does not match the pattern") for p in unmatched]
        return Catalog(splits={"train": samples}, classes=classes, kind="classify", skipped=skipped)


FORMAT = LabelFormat(name="name_regex", kind="classify", reader=NameRegexReader,
                     summary="the class in the file name, by a regular expression (Oxford pets)",
                     layout="images/<breed>_<n>.jpg", label_files=False)
