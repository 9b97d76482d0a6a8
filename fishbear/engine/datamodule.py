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

import dataclasses
import logging
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch
from torch.utils.data import DataLoader

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample
from fishbear.data.dataset import ImageDataset
from fishbear.data.decoded import DecodedImages
from fishbear.data.duplicates import (
    DuplicateCheck,
    DuplicatePolicy,
)
from fishbear.data.feed import Feed, Normalize, to_device_images
from fishbear.data.loading import LoaderSettings, ReadSettings
from fishbear.data.pack import PackStore, is_pack
from fishbear.data.pack_place import is_url, place_of
from fishbear.data.review_note import dataset_note
from fishbear.data.splits import SplitPlan
from fishbear.data.transforms import Augment, build_transforms
from fishbear.kinds import Kind, get_kind

log = logging.getLogger(__name__)


class Source(Protocol):
    def prepare(self, root: Path, kind: Kind) -> Path: ...


class Reader(Protocol):
    def __call__(self, root: Path) -> Catalog: ...


class Relabel(Protocol):
    def __call__(self, catalog: Catalog) -> Catalog: ...


class ImageDataModule(L.LightningDataModule):
    """``root`` read by ``reader`` (filled first by ``source`` when empty; its catalog turned into
    another kind's by ``relabel``), for the task ``kind``; ``feed``: size, fit, preprocessing and
    normalisation; ``augment``: the training pictures' augmentation; ``split``: how valid/test are
    made when the reader finds no such folders; ``duplicates``: near-copies across splits;
    ``loader`` and ``reading``: batches and unreadable files. ``void``: for masks, the code whose
    pixels are not scored. Configs build it through :func:`fishbear.engine.data_config.image_data`, whose keys are flat."""

    def __init__(self, root: str | Path, reader: Reader, kind: Kind | str | None = None, *,
                 source: Source | None = None, name: str | None = None, relabel: Relabel | None = None,
                 feed: Feed | None = None, augment: Augment | None = None, split: SplitPlan | None = None,
                 duplicates: DuplicatePolicy | None = None, loader: LoaderSettings | None = None,
                 reading: ReadSettings | None = None, void: str | None = None) -> None:
        super().__init__()
        self.location = str(root)  # as given: a folder, or a pack's s3://bucket/prefix
        self.root = Path(root).expanduser() if not is_url(root) else place_of(str(root)).names_root
        self.reader, self.source, self.relabel = reader, source, relabel
        self.name = name or self.root.name
        self.kind: Kind = get_kind(kind)
        self.feed_settings = feed or Feed()
        self.augment = augment
        self.split_plan = split or SplitPlan()
        self.duplicates = duplicates or DuplicatePolicy()
        self.loader = loader or LoaderSettings.of()
        self.reading = reading or ReadSettings()
        self.void = void
        self.duplicate_check: DuplicateCheck | None = None
        self.store: PackStore | None = None  # set when root is a pack (fishbear.data.pack)
        self._stream: Any = None  # data.stream=true: the training split's streaming loader, and a resumed state
        self._stream_state: dict[str, Any] | None = None
        self._normalize: Normalize | None = None
        self._catalog: Catalog | None = None
        self._datasets: dict[str, ImageDataset] = {}

    @property
    def image_size(self) -> int | tuple[int, int]:
        return self.feed_settings.image_size

    @property
    def batch_size(self) -> int:
        return self.loader.batch_size

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
        return self.feed_settings

    def use_feed(self, feed: Feed) -> None:
        """Feed a model as ``feed`` says: the network's statistics (ImageNet's for pretrained
        weights), or a checkpoint's whole feed (size, fit, preprocessing, normalisation), which an
        evaluation or a run's review follows whatever the data config says. Datasets are rebuilt."""
        self.feed_settings = feed
        self._normalize = None
        self._datasets.clear()

    @property
    def normalize(self) -> Normalize:
        """The device-side normalisation of this data's feed (one module, moved where it is used)."""
        if self._normalize is None:
            self._normalize = self.feed_settings.normalize()
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
        self.feed_settings = dataclasses.replace(self.feed_settings, image_size=image_size)
        self._datasets.clear()

    @property
    def num_outputs(self) -> int:
        """What the network's last layer must produce for this kind (two values per point)."""
        return self.kind.num_outputs(self.num_classes)

    def describe(self) -> dict[str, Any]:
        """A summary for reports and hyperparameter logs."""
        return {
            "name": self.name,
            "root": self.location if self.store is not None and self.store.place.remote else str(self.root),
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
            "pack": None if self.store is None else {"source": self.store.index.get("source"), **self.store.index["settings"]},
            "mean": list(self.feed_settings.mean),
            "std": list(self.feed_settings.std),
        }

    # -- Lightning hooks -----------------------------------------------------------------------
    def prepare_data(self) -> None:
        if is_url(self.location):  # only a pack lies in an object store
            if not is_pack(self.location):
                raise DataError(f"data.root={self.location} holds no fishbear pack (no {self.location}/fishbear-pack.json). "
                                f"Pack the dataset there first: fishbear pack data={self.name} out={self.location}")
            return
        if self.source is not None and not is_pack(self.root):  # a pack is filled by fishbear pack, not a source
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
        """The reader's catalog (a pack's own, when ``root`` is one), checked against the kind and split."""
        if is_url(self.location) or is_pack(self.root):
            # its pictures were decoded, and near copies looked for, when packed
            self.store = PackStore(self.location if is_url(self.location) else self.root)
            catalog = self.store.catalog(self.kind)
        else:
            catalog = self.reader(self.root)
        if self.relabel is not None:
            catalog = self.relabel(catalog)
        if catalog.kind != self.kind.name:
            reader = "the pack" if self.store is not None else f"its reader {type(self.reader).__name__}"
            raise DataError(
                f"data={self.name}: {reader} reads '{catalog.kind}' labels from "
                f"{self.root}, but the data config's task is '{self.kind.name}'. Pick a reader for "
                f"'{self.kind.name}' labels (data.reader=...), or the task of the labels' kind."
            )
        if self.reading.on_bad_image == "skip" and self.store is None:
            self.reading.drop_unreadable(catalog)
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
        if self.store is None:
            self._check_duplicates(catalog)
        self.kind.check_catalog(catalog, self.root)
        if self.reading.on_bad_image == "error" and self.store is None:
            self.reading.check_headers(catalog)
        return catalog

    def _check_duplicates(self, catalog: Catalog) -> None:
        """Near-copies across splits, per ``data.duplicates`` (:class:`DuplicatePolicy`)."""
        every = [sample for samples in catalog.splits.values() for sample in samples]
        labelled = bool(every) and self.kind.label_indices(every[0]) is not None

        def label_of(sample: Sample) -> str:
            return ", ".join(catalog.classes[i] for i in self.kind.label_indices(sample) or ())

        self.duplicate_check = self.duplicates.apply(catalog, label_of if labelled else None,
                                                     self.reading.cache_dir, self.name)

    def test_groups(self) -> list[str] | None:
        """The resampling unit of each test image (its group, or its time block), for intervals;
        None when test images are independent."""
        return self.split_plan.groups_of(self.samples(self.test_split), self.root)

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
            feed = self.feed_settings
            transform = build_transforms("train" if split == "train" else "valid", feed.image_size,
                                         self.augment if split == "train" else None, self.kind, feed.resize,
                                         feed.preprocess)
            cache = self.reading.cache_dir
            decode = DecodedImages(cache / "decoded").load if self.reading.decode_cache and split == "train" and cache \
                else None
            if self.store is not None:
                decode = self.store.load_rgb
            self._datasets[split] = ImageDataset(self.samples(split), transform, self.kind, self.num_classes,
                                                 decode=decode)
        return self._datasets[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        from fishbear.core.runtime import one_opencv_thread

        workers = self.loader.num_workers
        if workers > 0:
            one_opencv_thread()  # in the workers to be forked (the main process then only collates)
        return DataLoader(
            self.dataset(split),
            batch_size=self.loader.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            pin_memory=self.loader.pin_memory,
            persistent_workers=self.loader.persistent_workers and workers > 0,
            drop_last=shuffle and len(self.dataset(split)) > self.batch_size,
            collate_fn=self.kind.collate,
        )

    def train_dataloader(self) -> Any:
        if not self.loader.stream:
            return self._loader("train", shuffle=True)
        if self.store is None:
            raise DataError(f"data.stream=true reads a pack; {self.root} is a folder. Pack it (fishbear pack), or drop "
                            "data.stream.")
        from fishbear.data.pack_stream import stream_loader

        self._stream = stream_loader(self.store, "train", self.dataset("train"), self.loader.batch_size,
                                     self.loader.num_workers, torch.initial_seed() % 2**31, self.kind.collate,
                                     self.loader.pin_memory)
        if self._stream_state is not None:  # a resumed run's position in the epoch
            self._stream.load_state_dict(self._stream_state)
        return self._stream

    def state_dict(self) -> dict[str, Any]:
        """The streaming loader's position, in every checkpoint: Lightning restores its own copy only
        when it builds the loader after the checkpoint is read, and a one-cycle schedule builds it before."""
        return {"train_stream": self._stream.state_dict()} if self._stream is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._stream_state = state.get("train_stream")

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_split, shuffle=False)

    @property
    def test_split(self) -> str:
        return "test" if "test" in self.catalog.splits else "valid"
