"""The face of every ``data=`` config: its flat keys (what people type and sweep: ``data.batch_size=32``,
``data.split=group``) grouped into the data module's typed settings, each checked once as it is made."""

from __future__ import annotations

from pathlib import Path

from fishbear.data.duplicates import DuplicatePolicy
from fishbear.data.feed import Feed
from fishbear.data.loading import LoaderSettings, ReadSettings
from fishbear.data.splits import SplitPlan
from fishbear.data.transforms import Augment
from fishbear.engine.datamodule import ImageDataModule, Reader, Relabel, Source
from fishbear.kinds import Kind


def image_data(
    root: str | Path, reader: Reader, source: Source | None = None, name: str | None = None,
    kind: Kind | str | None = None, relabel: Relabel | None = None, void: str | None = None,
    # the feed and the augmentation
    image_size: int | list[int] = 64, resize: str | None = None, preprocess: list[str] | None = None,
    augment: Augment | None = None,
    # the loader and the reading of files
    batch_size: int = 64, num_workers: int | None = None, pin_memory: bool | None = None,
    persistent_workers: bool = True, stream: bool = False, on_bad_image: str = "error", decode_cache: bool = False,
    cache_dir: str | Path | None = None,
    # the split (fishbear.data.splits.SplitPlan) and near-copies across it
    split: str = "stratified", valid_pct: float = 0.2, test_pct: float = 0.0, split_seed: int = 42,
    group_pattern: str | None = None, group_csv: str | None = None, group_column: str = "group",
    order_pattern: str | None = None, order_csv: str | None = None, gap: int = 0, folds: int = 5, fold: int = 0,
    pool_folders: bool = False, duplicates: str = "warn", duplicate_bits: int = 6,
) -> ImageDataModule:
    """The data module of a ``data=`` config, whose keys are flat (what people type and sweep:
    ``data.batch_size=32``, ``data.split=group``), grouped here into the module's typed settings,
    each checked once as it is made. ``image_size``: one side or ``[height, width]``; ``resize``:
    ``crop``, ``squish`` or ``pad`` (None: the kind's); ``preprocess``: named steps applied to every
    picture first (``enhance``), carried by the checkpoint. ``valid_pct`` / ``test_pct``: the seeded
    fractions of ``train`` held out when the reader finds no such split. ``cache_dir``: image hashes
    (and, with ``decode_cache``, decoded training images) are kept there."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else None
    return ImageDataModule(
        root, reader, kind, source=source, name=name, relabel=relabel, void=void, augment=augment,
        feed=Feed(image_size, resize=resize, preprocess=tuple(preprocess or ())),
        loader=LoaderSettings.of(batch_size, num_workers, pin_memory, persistent_workers, stream),
        reading=ReadSettings(on_bad_image, bool(decode_cache), cache),
        split=SplitPlan(strategy=split, valid_pct=float(valid_pct), test_pct=float(test_pct), seed=int(split_seed),
                        group_pattern=group_pattern, group_csv=group_csv, group_column=group_column,
                        order_pattern=order_pattern, order_csv=order_csv, gap=int(gap), folds=int(folds),
                        fold=int(fold), pool_folders=bool(pool_folders)),
        duplicates=DuplicatePolicy(duplicates, int(duplicate_bits)),
    )
