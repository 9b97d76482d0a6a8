"""Format readers: each turns a folder on disk into a :class:`Catalog`.

A reader is a small callable configured in ``conf/data/*.yaml`` (``reader: {_target_: ...}``) and
called with the dataset root. A new dataset in a known format is a new YAML file, not new code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fishbear.data.catalog import Catalog, Sample
from fishbear.data.images import is_image_file
from fishbear.errors import DataError


def _listing(folder: Path, limit: int = 8) -> str:
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return shown or "(empty)"


@dataclass(frozen=True)
class ImageFolderReader:
    """``<root>/<split>/<class>/*.jpg`` trees (torchvision's ImageFolder, fastai's ``GrandparentSplitter``).

    ``train`` must exist; ``valid`` and ``test`` are used when present (a missing ``valid`` is
    split off ``train`` by the data module). ``class_map`` renames folders to class names, e.g.
    ``{positive: fish, negative: no_fish}``; several folders may map to one class.
    """

    train: str = "train"
    valid: str | None = "valid"
    test: str | None = "test"
    class_map: dict[str, str] | None = None

    def __call__(self, root: Path) -> Catalog:
        root = Path(root)
        train_dir = root / self.train
        if not train_dir.is_dir():
            raise DataError(
                f"No training folder {train_dir}. An ImageFolder dataset needs "
                f"{root}/{self.train}/<class name>/<image files>; {root} holds: {_listing(root)}. "
                f"Point data.root at such a folder, or set data.reader.train to the folder name used."
            )
        class_dirs = sorted(p for p in train_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise DataError(
                f"{train_dir} has no class folders (it holds: {_listing(train_dir)}). "
                "Put the images of each class in a folder named after the class: "
                f"{train_dir}/<class>/<image files>."
            )
        mapping = {d.name: (self.class_map or {}).get(d.name, d.name) for d in class_dirs}
        classes = sorted(set(mapping.values()))
        index = {name: i for i, name in enumerate(classes)}
        splits: dict[str, list[Sample]] = {}
        for split, folder in (("train", self.train), ("valid", self.valid), ("test", self.test)):
            if folder is None or not (root / folder).is_dir():
                continue
            samples: list[Sample] = []
            for class_dir in sorted((root / folder).iterdir()):
                if not class_dir.is_dir() or class_dir.name.startswith("."):
                    continue
                if class_dir.name not in mapping:
                    raise DataError(
                        f"{class_dir} is a class folder that {train_dir} does not have. "
                        f"Classes in train: {', '.join(sorted(mapping))}. Rename or remove the folder."
                    )
                files = sorted(p for p in class_dir.rglob("*") if p.is_file() and is_image_file(p))
                if not files:
                    raise DataError(
                        f"Class folder {class_dir} holds no image files (it holds: {_listing(class_dir)}). "
                        "Add images of that class, or remove the empty folder."
                    )
                samples += [Sample(path, index[mapping[class_dir.name]]) for path in files]
            splits[split] = samples
        return Catalog(splits=splits, classes=classes, kind="classify")


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
                            f"under {root} that holds the images (it holds: {_listing(Path(root))}).")
        try:
            regex = re.compile(self.pattern)
        except re.error as err:
            raise DataError(f"data.reader.pattern={self.pattern!r} is not a valid regular expression: {err}") from None
        found = folder.rglob("*") if self.recursive else folder.iterdir()
        files = sorted(p for p in found if p.is_file() and is_image_file(p))
        if not files:
            raise DataError(f"{folder} holds no image files (it holds: {_listing(folder)}).")
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
