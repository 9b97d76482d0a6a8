"""How a dataset that ships no ``valid`` or ``test`` folder is split, without leaking.

A random split is honest only for independent photographs. Frames of a video are neighbours
(a frame and the next one second later are near copies), a road-scene sequence or a person
photographed 500 times are one source: a random cut puts the same source on both sides and the
figure measures memory. So the strategy is chosen per dataset (``data.split``):

- ``stratified``: a seeded random cut keeping each class's share (photo collections);
- ``group``: whole groups (a sequence, a person, a video) go to one side; the group is read
  from the file's path relative to the root by ``data.group_pattern`` (a regex whose first
  capture group is the key) or from a CSV column; classes are kept in proportion where the
  groups allow (scikit-learn's ``StratifiedGroupKFold``);
- ``time``: items ordered by a frame number or time (``data.order_pattern`` on the file name,
  or a CSV such as the ``frames.csv`` ``fishbear.frames`` writes), train first, then valid,
  then test as contiguous blocks, ``data.gap`` items dropped at each boundary;
- ``kfold``: ``data.folds=K data.fold=i``: fold ``i`` is held out, by groups when a group source
  is given, by contiguous time blocks when an order source is given, else stratified, so
  ``-m data.fold=0,1,2,3,4`` is cross-validation.

Folders on disk win: a reader's ``valid``/``test`` folders are kept unless ``pool_folders``
merges them into the pool first. Test is held out before validation, so tuning on validation
never sees test. What was done is returned as ``info`` for the report's data section.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fishbear.core.errors import DataError
from fishbear.data.catalog import Sample
from fishbear.data.split_keys import KEY_SOURCES, KeySource, frame_order, group_keys, stratified_indices

STRATEGIES = ("stratified", "group", "time", "kfold")


def split_off(
    samples: list[Sample],
    fraction: float,
    seed: int,
    stratify: Callable[[Sample], Hashable] | None = None,
) -> tuple[list[Sample], list[Sample]]:
    """Move a seeded ``fraction`` of ``samples`` into a second list, per stratum when given.

    Stratifying keeps rare classes present in both parts of small, unbalanced datasets (52 fish
    frames against 116 empty ones), which a plain random cut does not promise. Every stratum of
    two or more samples keeps at least one sample on each side.
    """
    keep, taken = stratified_indices(list(range(len(samples))), [stratify(s) if stratify else None for s in samples],
                                      fraction, seed)
    return [samples[i] for i in keep], [samples[i] for i in taken]


@dataclass
class SplitPlan:
    """What ``data.split`` and its options ask for (see the module docstring)."""

    strategy: str = "stratified"
    valid_pct: float = 0.2
    test_pct: float = 0.0
    seed: int = 42
    group_pattern: str | None = None
    group_csv: str | None = None
    group_column: str = "group"
    order_pattern: str | None = None
    order_csv: str | None = None
    gap: int = 0
    folds: int = 5
    fold: int = 0
    pool_folders: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise DataError(f"data.split={self.strategy!r}: use one of {', '.join(STRATEGIES)}.")
        if self.strategy == "kfold" and not (2 <= self.folds and 0 <= self.fold < self.folds):
            raise DataError(f"data.folds={self.folds} data.fold={self.fold}: need folds >= 2 and 0 <= fold < folds.")
        if self.gap < 0:
            raise DataError(f"data.gap={self.gap}: the items dropped at each time boundary cannot be negative.")
        if self.strategy == "group" and not (self.group_pattern or self.group_csv):
            raise DataError("data.split=group needs data.group_pattern (a regex whose first capture group is the "
                            "group key, applied to the path relative to data.root) or data.group_csv.")

    # -- keys ----------------------------------------------------------------------------------
    @property
    def key_kind(self) -> str:
        """What holds items together: ``group``, ``time`` or nothing (``stratified``)."""
        if self.strategy != "kfold":
            return self.strategy
        if self.group_pattern or self.group_csv:
            return "group"
        if self.order_pattern or self.order_csv:
            return "time"
        return "stratified"

    def groups(self, samples: list[Sample], root: Path) -> list[str]:
        return group_keys(self, samples, root)

    def order(self, samples: list[Sample], root: Path) -> list[float]:
        return frame_order(self, samples, root)

    # -- the split ------------------------------------------------------------------------------
    def apply(self, splits: dict[str, list[Sample]], root: Path,
              stratum: Callable[[Sample], Hashable] | None) -> dict[str, list[Sample]]:
        """The reader's splits completed with ``valid`` (and ``test`` when ``test_pct`` > 0 or
        ``kfold``); ``info`` and :meth:`groups_of` say how."""
        splits = {name: list(samples) for name, samples in splits.items()}
        on_disk = [name for name in ("valid", "test") if name in splits]
        if self.pool_folders:
            for name in on_disk:
                splits["train"] += splits.pop(name)
            on_disk = []
        pool = splits["train"]
        strata = [stratum(s) if stratum else None for s in pool]
        source = self.keyed_by
        keys = source.keys(pool, root)
        indices = list(range(len(pool)))
        dropped: list[int] = []
        info: dict[str, Any] = {"strategy": self.strategy, "by": source.by(), "seed": self.seed,
                                "folders_on_disk": on_disk}
        if self.strategy == "kfold":
            held, rest, gone = source.fold(indices, strata, keys)
            dropped += gone
            target = "test" if "test" not in splits else "valid"
            splits[target] = [pool[i] for i in held]
            info.update(folds=self.folds, fold=self.fold, held_out_as=target)
            indices = rest
        elif "test" not in splits and self.test_pct > 0:
            indices, held, gone = source.holdout(indices, strata, keys, self.test_pct, self.seed + 1)
            splits["test"] = [pool[i] for i in held]
            dropped += gone
        if "valid" not in splits:
            indices, held, gone = source.holdout(indices, strata, keys, self.valid_pct, self.seed)
            splits["valid"] = [pool[i] for i in held]
            dropped += gone
        splits["train"] = [pool[i] for i in indices]
        info["dropped_at_boundaries"] = len(dropped)
        source.describe(info, splits, root)
        self.info = info
        return splits

    @property
    def keyed_by(self) -> KeySource:
        return KEY_SOURCES[self.key_kind](self)

    def groups_of(self, samples: list[Sample], root: Path) -> list[str] | None:
        """The resampling unit of each sample for intervals: its group; for time splits, runs of
        consecutive items (about the cube root of the count, a block bootstrap); None when items
        are independent."""
        return self.keyed_by.units(samples, root)
