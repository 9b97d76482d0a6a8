"""The one LightningDataModule behind every ``data=`` config.

A dataset config names where the files are (``root``), how the folder gets filled when it is
empty (``source``: a generator or a download), which format reader applies (``reader``), and how
images are sized, augmented and batched. Its task kind is the kind of the task config it chooses
(``fishbear.engine.experiment.build_datamodule`` passes it in); the kind (``fishbear.kinds``) turns
samples into batches. The module exposes what a model and a task need to know about the data
(class names, outputs, normalisation), so that any ``model=`` combines with any ``data=`` of a
fitting kind.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch
from torch.utils.data import DataLoader

from fishbear.core.errors import DataError
from fishbear.core.geometry import as_hw
from fishbear.core.normalization import IMAGENET_MEAN, IMAGENET_STD
from fishbear.data.catalog import Catalog, Sample
from fishbear.data.dataset import ImageDataset
from fishbear.data.decoded import DecodedImages
from fishbear.data.duplicates import (
    POLICIES,
    DuplicateCheck,
    drop_copies,
    find_duplicates,
    fingerprints,
    warning_line,
)
from fishbear.data.feed import Feed, Normalize, to_device_images
from fishbear.data.images import header_problem, image_problem
from fishbear.data.review_note import dataset_note
from fishbear.data.splits import SplitPlan
from fishbear.data.transforms import Augment, build_transforms
from fishbear.kinds import Kind, get_kind

log = logging.getLogger(__name__)


def _size(image_size: int | list[int] | tuple[int, int]) -> int | list[int]:
    if hasattr(image_size, "__len__") and len(image_size) != 2:
        raise DataError(f"data.image_size={list(image_size)}: give one side or [height, width].")
    height, width = as_hw(image_size)
    return height if height == width else [height, width]


class Source(Protocol):
    def prepare(self, root: Path, kind: Kind) -> Path: ...


class Reader(Protocol):
    def __call__(self, root: Path) -> Catalog: ...


class Relabel(Protocol):
    def __call__(self, catalog: Catalog) -> Catalog: ...


def default_num_workers() -> int:
    """Leave the main process a core: the loader overlaps decoding with the GPU's compute. (A run
    whose model trains on the CPU is planned otherwise: ``fishbear.engine.experiment``.)"""
    from fishbear.core.runtime import available_cores

    return max(0, min(8, available_cores() - 1))


class ImageDataModule(L.LightningDataModule):
    def __init__(
        self,
        root: str | Path,
        reader: Reader,
        source: Source | None = None,
        name: str | None = None,
        kind: Kind | str | None = None,
        image_size: int | list[int] = 64,
        batch_size: int = 64,
        num_workers: int | None = None,
        valid_pct: float = 0.2,
        test_pct: float = 0.0,
        split_seed: int = 42,
        augment: Augment | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        on_bad_image: str = "error",
        void: str | None = None,
        relabel: Relabel | None = None,
        split: str = "stratified",
        group_pattern: str | None = None,
        group_csv: str | None = None,
        group_column: str = "group",
        order_pattern: str | None = None,
        order_csv: str | None = None,
        gap: int = 0,
        folds: int = 5,
        fold: int = 0,
        pool_folders: bool = False,
        duplicates: str = "warn",
        duplicate_bits: int = 6,
        cache_dir: str | Path | None = None,
        resize: str | None = None,
        decode_cache: bool = False,
        preprocess: list[str] | None = None,
    ) -> None:
        """``valid_pct`` / ``test_pct``: the seeded fractions of ``train`` held out when the reader
        finds no such split (``test_pct: 0`` tests on validation). ``on_bad_image``: ``error`` stops
        at the first unreadable file (named in the message);
        ``skip`` decodes every image once at setup and leaves unreadable ones out, counted in the
        report and named in the log. ``void``: for masks, the code whose pixels are not scored
        (read by the segmentation task through ``${data.void}``). ``relabel``: turns the
        reader's catalog into another kind's (boxes counted per image for regression), so one
        reader per format serves several kinds. ``kind``: the task kind (a
        name or a :class:`~fishbear.kinds.Kind`; None: classification).

        ``split`` (stratified, group, time, kfold) with ``group_pattern``/``group_csv``/
        ``group_column``, ``order_pattern``/``order_csv``, ``gap``, ``folds``/``fold`` and
        ``pool_folders``: how valid/test are made when the reader finds no such folders
        (:class:`fishbear.data.splits.SplitPlan`).
        ``duplicates``: what a near-copy of an image in another split does (``warn``, ``drop`` the
        train-side copy, ``error``, or ``report`` only: frames of a static camera are alike by
        nature); ``duplicate_bits``: the largest perceptual-hash distance that counts as a copy;
        ``cache_dir``: where image hashes are cached (the configs say ``${paths.data_dir}/cache``;
        None: hashed afresh each time).
        ``resize``: how a picture is fitted to ``image_size`` (``crop``, ``squish``, ``pad``; None:
        the kind's choice; see :func:`fishbear.data.transforms.build_transforms`).
        ``decode_cache``: training images decoded once and kept as arrays under
        ``cache_dir/decoded`` (:mod:`fishbear.data.decoded`).
        ``preprocess``: named steps applied to every picture first (``enhance``: grey-world and
        CLAHE), carried by the checkpoint so inference does the same."""
        super().__init__()
        self.root = Path(root).expanduser()
        self.reader = reader
        self.source = source
        self.name = name or self.root.name
        self.kind: Kind = get_kind(kind)
        self.image_size = _size(image_size)
        self.batch_size = int(batch_size)
        self.num_workers = default_num_workers() if num_workers is None else int(num_workers)
        self.augment = augment
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        if on_bad_image not in ("error", "skip"):
            raise DataError(f"data.on_bad_image={on_bad_image!r}: use 'error' or 'skip'")
        self.on_bad_image = on_bad_image
        self.void = void
        self.relabel = relabel
        self.split_plan = SplitPlan(strategy=split, valid_pct=float(valid_pct), test_pct=float(test_pct),
                                    seed=int(split_seed), group_pattern=group_pattern, group_csv=group_csv,
                                    group_column=group_column, order_pattern=order_pattern, order_csv=order_csv,
                                    gap=int(gap), folds=int(folds), fold=int(fold), pool_folders=bool(pool_folders))
        if duplicates not in POLICIES:
            raise DataError(f"data.duplicates={duplicates!r}: use one of {', '.join(POLICIES)}.")
        self.duplicates = duplicates
        self.duplicate_bits = int(duplicate_bits)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        if decode_cache and self.cache_dir is None:
            raise DataError("data.decode_cache=true needs data.cache_dir (a folder for the decoded arrays)")
        self.decode_cache = bool(decode_cache)
        self.duplicate_check: DuplicateCheck | None = None
        self.resize = resize
        self.preprocess: tuple[str, ...] = tuple(preprocess or ())
        self.mean: tuple[float, ...] = IMAGENET_MEAN
        self.std: tuple[float, ...] = IMAGENET_STD
        self._normalize: Normalize | None = None
        self._catalog: Catalog | None = None
        self._datasets: dict[str, ImageDataset] = {}

    # -- what the rest of fishbear reads -------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self.prepare_data()
            self.setup()
        assert self._catalog is not None
        return self._catalog

    @property
    def classes(self) -> list[str]:
        return list(self.catalog.classes)

    @property
    def num_classes(self) -> int:
        return len(self.catalog.classes)

    @property
    def feed(self) -> Feed:
        """How this data feeds a model (what a checkpoint records as its ``feed``)."""
        size = self.image_size
        return Feed(size if isinstance(size, int) else tuple(size), tuple(self.mean), tuple(self.std), self.resize,
                    tuple(self.preprocess))

    def use_feed(self, feed: Feed) -> None:
        """Feed a model as ``feed`` says: the network's statistics (ImageNet's for pretrained
        weights), or a checkpoint's whole feed (size, fit, preprocessing, normalisation), which an
        evaluation or a run's review follows whatever the data config says. Datasets are rebuilt."""
        self.image_size = _size(feed.image_size)
        self.mean, self.std = tuple(float(m) for m in feed.mean), tuple(float(s) for s in feed.std)
        self.resize, self.preprocess = feed.resize, tuple(feed.preprocess)
        self._normalize = None
        self._datasets.clear()

    @property
    def normalize(self) -> Normalize:
        """The device-side normalisation of this data's feed (one module, moved where it is used)."""
        if self._normalize is None:
            self._normalize = Normalize(self.mean, self.std)
        return self._normalize

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Lightning's step after a batch reached the model's device: the uint8 pictures become
        the network's float input there (:mod:`fishbear.data.feed`)."""
        if isinstance(batch, dict) and "image" in batch:
            batch["image"] = to_device_images(batch["image"], self.normalize)
        return batch

    def to_model(self, batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
        """A batch of this data's loaders on ``device``, as a Lightning step receives it (for loops
        outside the Trainer: the multi-label threshold tuning)."""
        moved = {key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
                 for key, value in batch.items()}
        return self.on_after_batch_transfer(moved, 0)

    def set_image_size(self, image_size: int | list[int]) -> None:
        """A new size for every split from the next loader on (progressive resizing; evaluation at
        the checkpoint's size); the split itself does not change."""
        self.image_size = _size(image_size)
        self._datasets.clear()

    @property
    def num_outputs(self) -> int:
        """What the network's last layer must produce for this kind (two values per point)."""
        return self.kind.num_outputs(self.num_classes)

    def describe(self) -> dict[str, Any]:
        """A summary for reports and hyperparameter logs."""
        return {
            "name": self.name,
            "root": str(self.root),
            "kind": self.kind.name,
            "classes": self.classes,
            "image_size": self.image_size,
            "batch_size": self.batch_size,
            "sizes": {split: len(samples) for split, samples in self.catalog.splits.items()},
            "split": self.split_plan.info,
            "duplicates": self.duplicate_check.summary() if self.duplicate_check is not None else None,
            "skipped": [{"file": str(path), "reason": why} for path, why in self.catalog.skipped],
            "void": self.void,
            "review": dataset_note(self.root),
            "mean": list(self.mean),
            "std": list(self.std),
        }

    # -- Lightning hooks -----------------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.source is not None:
            self.source.prepare(self.root, self.kind)
        if self.root.exists() and not self.root.is_dir():
            raise DataError(
                f"data.root={self.root} is a file, not a folder. Set data.root to the dataset's folder "
                f"(data={self.name} expects the {type(self.reader).__name__} layout there)."
            )
        elif not self.root.is_dir():
            raise DataError(
                f"Data folder {self.root} does not exist. Set data.root=/path/to/your/dataset "
                f"(data={self.name} expects the {type(self.reader).__name__} layout there)."
            )

    def setup(self, stage: str | None = None) -> None:
        if self._catalog is not None:
            return
        try:
            self._catalog = self._read_catalog()
        except PermissionError as err:  # a folder, label file or image of another user's
            raise DataError(f"{err.filename or self.root} cannot be read (permission denied): data={self.name} needs to "
                            "read every folder and file under data.root. Fix the permissions (chmod / ask its owner), "
                            "or copy the dataset somewhere you can read.") from None

    def _read_catalog(self) -> Catalog:
        """The reader's catalog, checked against the kind and split (see :meth:`setup`)."""
        catalog = self.reader(self.root)
        if self.relabel is not None:
            catalog = self.relabel(catalog)
        if catalog.kind != self.kind.name:
            raise DataError(
                f"data={self.name}: its reader {type(self.reader).__name__} reads '{catalog.kind}' labels from "
                f"{self.root}, but the data config's task is '{self.kind.name}'. Pick a reader for "
                f"'{self.kind.name}' labels (data.reader=...), or the task of the labels' kind."
            )
        if self.on_bad_image == "skip":
            self._drop_unreadable(catalog)
        if "train" not in catalog.splits or not catalog.splits["train"]:
            raise DataError(f"{self.root}: the reader found no training images.")
        if not catalog.classes:
            raise DataError(f"{self.root}: the labels name no class at all (for boxes: no image has a box); "
                            "check data.reader points at the label files.")
        stratum = self.kind.stratum
        stratify = stratum if stratum(catalog.splits["train"][0]) is not None else None
        catalog.splits = self.split_plan.apply(catalog.splits, self.root, stratify)
        empty = [split for split, samples in catalog.splits.items() if not samples]
        if empty:
            raise DataError(
                f"{self.root}: the {' and '.join(empty)} split(s) hold no images (an empty {empty[0]}/ folder, or "
                f"too few images to hold out {self.split_plan.info.get('by', 'a share')}): a run tested or validated on "
                "nothing reports nothing. Put images there, remove the empty folder, or give the data more images."
            )
        self._check_duplicates(catalog)
        self.kind.check_catalog(catalog, self.root)
        if self.on_bad_image == "error":
            self._check_headers(catalog)
        return catalog

    def _check_duplicates(self, catalog: Catalog) -> None:
        """Near-copies across splits, per ``data.duplicates`` (see ``fishbear.data.duplicates``);
        ``off`` does not look (hashing every picture costs a pass over the data at setup)."""
        if self.duplicates == "off":
            self.duplicate_check = None
            return
        every = [sample for samples in catalog.splits.values() for sample in samples]
        labelled = bool(every) and self.kind.label_indices(every[0]) is not None

        def label_of(sample: Sample) -> str:
            return ", ".join(catalog.classes[i] for i in self.kind.label_indices(sample) or ())

        check = find_duplicates(catalog.splits, fingerprints([s.image for s in every], self.cache_dir),
                                self.duplicate_bits, label_of if labelled else None)
        check.policy = self.duplicates
        self.duplicate_check = check
        if check.across_labels:
            first = check.across_labels[0]
            log.warning("%d file(s) appear under two labels (same bytes), e.g. %s as %s: fix the labels or delete "
                        "the copy.", len(check.across_labels), " and ".join(first["files"][:2]), " and ".join(first["labels"]))
        if not check.leaks:
            return
        if self.duplicates == "error":
            raise DataError(warning_line(check).replace("Possible leak", f"data={self.name}: leak")
                            + " (data.duplicates=error)")
        if self.duplicates == "drop":
            catalog.splits = drop_copies(catalog.splits, check)
            log.warning("data.duplicates=drop: removed %d train-side cop%s of held-out images.", check.dropped,
                        "y" if check.dropped == 1 else "ies")
        elif self.duplicates == "warn":
            log.warning(warning_line(check))

    def test_groups(self) -> list[str] | None:
        """The resampling unit of each test image (its group, or its time block), for intervals;
        None when test images are independent."""
        return self.split_plan.groups_of(self.samples(self.test_split), self.root)

    def _check_headers(self, catalog: Catalog) -> None:
        """A file of any split that is no image stops the run now, not after the training when the
        test split is read (``on_bad_image=skip`` decodes every file instead and leaves them out)."""
        for split, samples in catalog.splits.items():
            for sample in samples:
                problem = header_problem(sample.image)
                if problem is not None:
                    raise DataError(
                        f"Image file {sample.image} ({split} split) cannot be read as an image ({problem}). "
                        "Delete or replace the file, or set data.on_bad_image=skip to leave such files out."
                    )

    def _drop_unreadable(self, catalog: Catalog) -> None:
        for split, samples in catalog.splits.items():
            kept = []
            for sample in samples:
                problem = image_problem(sample.image)
                if problem is None:
                    kept.append(sample)
                else:
                    catalog.skipped.append((sample.image, problem))
            catalog.splits[split] = kept
        if catalog.skipped:
            shown = "; ".join(f"{path} ({why})" for path, why in catalog.skipped[:5])
            log.warning("data.on_bad_image=skip: left out %d unreadable file(s): %s", len(catalog.skipped), shown)

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class (or tag) and split; empty for kinds whose targets are not labels."""
        return self.kind.label_counts(self.catalog)

    def samples(self, split: str) -> list[Sample]:
        if split not in self.catalog.splits:
            raise DataError(
                f"Dataset {self.name} at {self.root} has no '{split}' split "
                f"(it has: {', '.join(self.catalog.splits)})."
            )
        return self.catalog.splits[split]

    def dataset(self, split: str) -> ImageDataset:
        if split not in self._datasets:
            transform = build_transforms(
                "train" if split == "train" else "valid",
                self.image_size,
                self.augment if split == "train" else None,
                self.kind,
                self.resize,
                self.preprocess,
            )
            decode = DecodedImages(self.cache_dir / "decoded").load if self.decode_cache and split == "train" else None
            self._datasets[split] = ImageDataset(self.samples(split), transform, self.kind, self.num_classes,
                                                 decode=decode)
        return self._datasets[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        from fishbear.core.runtime import one_opencv_thread

        workers = self.num_workers
        if workers > 0:
            one_opencv_thread()  # in the workers to be forked (the main process then only collates)
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and workers > 0,
            drop_last=shuffle and len(self.dataset(split)) > self.batch_size,
            collate_fn=self.kind.collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_split, shuffle=False)

    @property
    def test_split(self) -> str:
        return "test" if "test" in self.catalog.splits else "valid"
