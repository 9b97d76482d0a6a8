"""ImageFolder trees: ``<root>/<split>/<class>/*.jpg``, the class is the folder's name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample
from fishbear.data.images import is_image_file
from fishbear.data.label_files import listing
from fishbear.formats.base import LabelFormat


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
                f"{root}/{self.train}/<class name>/<image files>; {root} holds: {listing(root)}. "
                f"Point data.root at such a folder, or set data.reader.train to the folder name used."
            )
        class_dirs = sorted(p for p in train_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise DataError(
                f"{train_dir} has no class folders (it holds: {listing(train_dir)}). "
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
                        f"Class folder {class_dir} holds no image files (it holds: {listing(class_dir)}). "
                        "Add images of that class, or remove the empty folder."
                    )
                samples += [Sample(path, index[mapping[class_dir.name]]) for path in files]
            splits[split] = samples
        return Catalog(splits=splits, classes=classes, kind="classify")


FORMAT = LabelFormat(name="imagefolder", kind="classify", reader=ImageFolderReader,
                     summary="an ImageFolder tree: the class is the folder's name",
                     layout="train/<class>/*.jpg (+ valid/, test/)", label_files=False)
