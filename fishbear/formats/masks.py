"""Segmentation folders: images, masks named after them, and ``codes.txt``.

Two layouts in one reader, told apart by configuration only: fastai's CamVid
(``images/x.png`` + ``labels/x_P.png``, ``mask_name: "{stem}_P{suffix}"``, an optional
``valid.txt``) and SegNet's (``train/`` + ``trainannot/`` with the same file names, one pair of
folders per split).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample
from fishbear.data.images import UNREADABLE, check_mask_size, is_image_file, upright_size_of
from fishbear.data.label_files import read_codes, read_label_text
from fishbear.formats.base import LabelFormat

SPLIT_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class MaskFolderReader:
    """``images`` and ``masks`` map split names to folders under the root (a split without a
    mask folder is not read). ``mask_name`` builds a mask file name from the image's ``{name}``,
    ``{stem}`` and ``{suffix}``. ``valid_list``: a file naming the validation images (one name a
    line, fastai's ``valid.txt``), taken out of ``train``. Masks' sizes are checked against their
    images here (headers only); their values are checked as they are decoded."""

    codes: str = "codes.txt"
    images: dict[str, str] | None = None
    masks: dict[str, str] | None = None
    mask_name: str = "{stem}_P{suffix}"
    valid_list: str | None = None

    def __call__(self, root: Path) -> Catalog:
        root = Path(root)
        classes = read_codes(root / self.codes)
        images = dict(self.images or {"train": "images"})
        masks = dict(self.masks or {"train": "labels"})
        unknown = set(images) - set(SPLIT_NAMES)
        if unknown or "train" not in images:
            raise DataError(f"data.reader.images must map train (and optionally valid, test) to folders; got {images}")
        splits: dict[str, list[Sample]] = {}
        for split, folder in images.items():
            if split not in masks:
                raise DataError(f"data.reader.masks has no folder for split {split!r} (images: {folder}).")
            splits[split] = self._pairs(root / folder, root / masks[split])
        if self.valid_list:
            splits["train"], splits["valid"] = self._split_by_list(root / self.valid_list, splits["train"])
        return Catalog(splits=splits, classes=classes, kind="segment")

    def _pairs(self, image_dir: Path, mask_dir: Path) -> list[Sample]:
        for folder, what in ((image_dir, "image"), (mask_dir, "mask")):
            if not folder.is_dir():
                raise DataError(f"The {what} folder {folder} does not exist; set data.reader.images / "
                                "data.reader.masks to the folders under data.root.")
        files = sorted(p for p in image_dir.iterdir() if p.is_file() and is_image_file(p))
        if not files:
            raise DataError(f"{image_dir} holds no image files.")
        samples = []
        for path in files:
            mask = mask_dir / self.mask_name.format(name=path.name, stem=path.stem, suffix=path.suffix)
            if not mask.is_file():
                raise DataError(
                    f"No mask for image {path}: expected {mask} (data.reader.mask_name={self.mask_name!r}). "
                    "Add the mask, remove the image, or fix mask_name."
                )
            _check_size(path, mask)
            samples.append(Sample(path, mask))
        return samples

    @staticmethod
    def _split_by_list(listing: Path, samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
        if not listing.is_file():
            raise DataError(f"Validation list {listing} does not exist (data.reader.valid_list).")
        names = {line.strip() for line in read_label_text(listing).splitlines() if line.strip()}
        valid = [s for s in samples if s.image.name in names or s.image.stem in names]
        missing = names - {s.image.name for s in valid} - {s.image.stem for s in valid}
        if missing:
            raise DataError(f"{listing} names {len(missing)} image(s) that are not in the image folder "
                            f"(e.g. {', '.join(sorted(missing)[:3])}).")
        return [s for s in samples if s not in valid], valid


def _check_size(image: Path, mask: Path) -> None:
    try:
        with Image.open(image) as a, Image.open(mask) as b:  # a mask is of the picture as it looks
            check_mask_size(mask, image, b.size[::-1], upright_size_of(a)[::-1])
    except UNREADABLE as err:
        raise DataError(f"Cannot read {image} or its mask {mask}: {type(err).__name__}: {err}") from None


FORMAT = LabelFormat(name="masks", kind="segment", reader=MaskFolderReader,
                     summary="masks named after images and codes.txt (fastai's CamVid, SegNet's folders)",
                     layout="images/ + labels/<stem>_P.png + codes.txt")
