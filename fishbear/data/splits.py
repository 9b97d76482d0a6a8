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

import csv
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fishbear.core.errors import DataError
from fishbear.data.catalog import Sample

STRATEGIES = ("stratified", "group", "time", "kfold")
# the last number in a file's name: video1_frame_120.jpg -> 120, frame_000042.jpg -> 42
DEFAULT_ORDER_PATTERN = r"(\d+)(?!.*\d)"


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
    keep, taken = _stratified_indices(list(range(len(samples))), [stratify(s) if stratify else None for s in samples],
                                      fraction, seed)
    return [samples[i] for i in keep], [samples[i] for i in taken]


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")


def _stratified_indices(indices: list[int], strata: list[Hashable], fraction: float,
                        seed: int) -> tuple[list[int], list[int]]:
    _check_fraction(fraction)
    by_stratum: dict[Hashable, list[int]] = defaultdict(list)
    for i in indices:
        by_stratum[strata[i]].append(i)
    rng = np.random.default_rng(seed)
    held: set[int] = set()
    for key in sorted(by_stratum, key=repr):
        members = by_stratum[key]
        order = rng.permutation(len(members))
        n = int(round(fraction * len(members)))
        if len(members) >= 2:
            n = min(max(n, 1), len(members) - 1)
        held.update(members[j] for j in order[:n])
    return [i for i in indices if i not in held], [i for i in indices if i in held]


# -- where groups and order come from ------------------------------------------------------------
def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _csv_column(csv_path: Path, column: str | list[str], root: Path) -> dict[str, str]:
    """``file`` -> value of ``column`` (the first of several present) in a CSV, keyed by the
    path relative to the root and by the bare file name."""
    if not csv_path.is_file():
        raise DataError(f"{csv_path} does not exist: the split needs it (a CSV with a 'file' column). "
                        "Write it, or set the split's CSV option to null to read keys from file names.")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = [column] if isinstance(column, str) else list(column)
    header = list(rows[0]) if rows else []
    found = next((c for c in columns if c in header), None)
    if "file" not in header or found is None:
        raise DataError(f"{csv_path}: needs a 'file' column and a '{columns[0]}' column (it has: {', '.join(header)}).")
    out: dict[str, str] = {}
    for row in rows:
        name = (row["file"] or "").replace("\\", "/")
        out[name] = row[found]
        out.setdefault(Path(name).name, row[found])
    return out


def _lookup(table: dict[str, str], sample: Sample, root: Path, csv_path: Path) -> str:
    for key in (_relative(sample.image, root), sample.image.name):
        if key in table:
            return table[key]
    raise DataError(f"{sample.image} is not listed in {csv_path} ('file' column). Add a row for it.")


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
        if self.group_csv:
            path = root / self.group_csv
            table = _csv_column(path, self.group_column, root)
            return [_lookup(table, s, root, path) for s in samples]
        pattern = re.compile(self.group_pattern or "")
        keys = []
        for sample in samples:
            relative = _relative(sample.image, root)
            found = pattern.search(relative)
            if not found or not found.groups() or found.group(1) is None:
                raise DataError(f"{sample.image}: data.group_pattern={self.group_pattern!r} finds no group in "
                                f"'{relative}' (the path relative to data.root). Fix the pattern (its first "
                                "capture group is the key) or list the groups in data.group_csv.")
            keys.append(found.group(1))
        return keys

    def order(self, samples: list[Sample], root: Path) -> list[float]:
        if self.order_csv:
            path = root / self.order_csv
            table = _csv_column(path, ["time", "frame", "order"], root)
            values = [_lookup(table, s, root, path) for s in samples]
            source = str(path)
        else:
            pattern = re.compile(self.order_pattern or DEFAULT_ORDER_PATTERN)
            values = []
            for sample in samples:
                found = pattern.search(sample.image.name)
                if not found:
                    raise DataError(f"{sample.image}: data.order_pattern={pattern.pattern!r} finds no frame number "
                                    "in the file name. Fix the pattern, give data.order_csv (e.g. the frames.csv "
                                    "fishbear.frames writes), or use data.split=stratified for independent photos.")
                values.append(found.group(1) if found.groups() else found.group(0))
            source = pattern.pattern
        try:
            return [float(v) for v in values]
        except ValueError as error:
            raise DataError(f"The frame numbers read with {source} are not numbers ({error}).") from None

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


def _codes(strata: list[Hashable]) -> list[int] | None:
    if not strata or strata[0] is None or len(set(strata)) < 2:
        return None
    names = {key: n for n, key in enumerate(sorted(set(strata), key=repr))}
    return [names[s] for s in strata]


def _shared(per_split: dict[str, list[str]]) -> list[dict[str, Any]]:
    where: dict[str, list[str]] = defaultdict(list)
    for name, keys in per_split.items():
        for key in keys:
            where[key].append(name)
    return [{"group": key, "splits": names} for key, names in sorted(where.items()) if len(names) > 1]


def _nth_fold(parts: Any, indices: list[int], fold: int) -> tuple[list[int], list[int], list[int]]:
    """(held out, the rest, nothing dropped) from scikit-learn's ``split`` output, as indices into the pool."""
    _, held_positions = list(parts)[fold]
    held = {indices[p] for p in held_positions}
    return [i for i in indices if i in held], [i for i in indices if i not in held], []


class KeySource:
    """What holds items together, and so how they are held out: nothing but their class (this
    base), a group, or their place in time. As indices into the pool, ``holdout`` returns (kept,
    held out, dropped at boundaries) and ``fold`` (held out, the rest, dropped)."""

    def __init__(self, plan: SplitPlan) -> None:
        self.plan = plan

    def by(self) -> str:
        return "class (stratified random)"

    def keys(self, pool: list[Sample], root: Path) -> list[Any]:
        return [None] * len(pool)

    def holdout(self, indices: list[int], strata: list[Hashable], keys: list[Any], fraction: float,
                seed: int) -> tuple[list[int], list[int], list[int]]:
        keep, held = _stratified_indices(indices, strata, fraction, seed)
        return keep, held, []

    def fold(self, indices: list[int], strata: list[Hashable], keys: list[Any]) -> tuple[list[int], list[int], list[int]]:
        from sklearn.model_selection import KFold, StratifiedKFold

        plan = self.plan
        y = _codes([strata[i] for i in indices])
        if y is not None and min(Counter(y).values()) >= plan.folds:
            return _nth_fold(StratifiedKFold(plan.folds, shuffle=True, random_state=plan.seed).split(indices, y),
                             indices, plan.fold)
        return _nth_fold(KFold(plan.folds, shuffle=True, random_state=plan.seed).split(indices), indices, plan.fold)

    def describe(self, info: dict[str, Any], splits: dict[str, list[Sample]], root: Path) -> None:
        """Add what went where to the split's ``info``."""

    def units(self, samples: list[Sample], root: Path) -> list[str] | None:
        return None


class ByGroup(KeySource):
    def by(self) -> str:
        plan = self.plan
        return f"group from {plan.group_csv}:{plan.group_column}" if plan.group_csv else f"group /{plan.group_pattern}/"

    def keys(self, pool: list[Sample], root: Path) -> list[Any]:
        return list(self.plan.groups(pool, root))

    def holdout(self, indices: list[int], strata: list[Hashable], keys: list[Any], fraction: float,
                seed: int) -> tuple[list[int], list[int], list[int]]:
        """About ``fraction`` of the items, in whole groups; class shares kept where the groups allow."""
        from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

        _check_fraction(fraction)
        groups = [keys[i] for i in indices]
        n_groups = len(set(groups))
        if n_groups < 2:
            raise DataError(f"data.split={self.plan.strategy} ({self.by()}) finds {n_groups} group in the data left to "
                            "split: nothing can be held out without putting one group on two sides. Check "
                            "data.group_pattern, or use folders on disk for valid/test.")
        y = _codes([strata[i] for i in indices])
        if y is not None:
            n_splits = min(n_groups, max(2, round(1 / fraction)))
            parts = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(indices, y, groups)
        else:
            parts = GroupShuffleSplit(1, test_size=fraction, random_state=seed).split(indices, groups=groups)
        held, rest, _ = _nth_fold([next(iter(parts))], indices, 0)
        return rest, held, []

    def fold(self, indices: list[int], strata: list[Hashable], keys: list[Any]) -> tuple[list[int], list[int], list[int]]:
        from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

        plan = self.plan
        groups = [keys[i] for i in indices]
        if len(set(groups)) < plan.folds:
            raise DataError(f"data.folds={plan.folds}, but the data has only {len(set(groups))} groups "
                            f"({self.by()}). Use fewer folds.")
        y = _codes([strata[i] for i in indices])
        splitter = StratifiedGroupKFold(plan.folds, shuffle=True, random_state=plan.seed) if y is not None \
            else GroupKFold(plan.folds)
        return _nth_fold(splitter.split(indices, y, groups), indices, plan.fold)

    def describe(self, info: dict[str, Any], splits: dict[str, list[Sample]], root: Path) -> None:
        per_split = {name: sorted(set(self.plan.groups(samples, root))) for name, samples in splits.items() if samples}
        info["groups"] = {name: len(keys) for name, keys in per_split.items()}
        info["group_names"] = {name: keys[:20] for name, keys in per_split.items()}
        info["groups_in_two_splits"] = _shared(per_split)

    def units(self, samples: list[Sample], root: Path) -> list[str] | None:
        return self.plan.groups(samples, root)


class ByTime(KeySource):
    def by(self) -> str:
        plan = self.plan
        return f"order from {plan.order_csv}" if plan.order_csv else f"order /{plan.order_pattern or DEFAULT_ORDER_PATTERN}/"

    def keys(self, pool: list[Sample], root: Path) -> list[Any]:
        return list(self.plan.order(pool, root))

    def holdout(self, indices: list[int], strata: list[Hashable], keys: list[Any], fraction: float,
                seed: int) -> tuple[list[int], list[int], list[int]]:
        """The last ``fraction`` of the items in time order; ``gap`` items before it dropped."""
        _check_fraction(fraction)
        gap = self.plan.gap
        ordered = sorted(indices, key=lambda i: (keys[i], i))
        n = min(max(1, int(round(fraction * len(ordered)))), len(ordered) - 1)
        held = ordered[len(ordered) - n:]
        dropped = ordered[max(0, len(ordered) - n - gap):len(ordered) - n]
        if len(ordered) - n - len(dropped) < 1:
            raise DataError(f"data.gap={gap} leaves nothing to train on ({len(ordered)} items). Use a smaller gap.")
        gone = set(held) | set(dropped)
        held_set = set(held)
        return [i for i in indices if i not in gone], [i for i in indices if i in held_set], dropped

    def fold(self, indices: list[int], strata: list[Hashable], keys: list[Any]) -> tuple[list[int], list[int], list[int]]:
        """Contiguous time blocks; ``gap`` items dropped on each side of the held-out one."""
        plan = self.plan
        ordered = sorted(indices, key=lambda i: (keys[i], i))
        bounds = np.linspace(0, len(ordered), plan.folds + 1).round().astype(int)
        start, stop = int(bounds[plan.fold]), int(bounds[plan.fold + 1])
        held = ordered[start:stop]
        dropped = ordered[max(0, start - plan.gap):start] + ordered[stop:stop + plan.gap]
        gone = set(held) | set(dropped)
        return held, [i for i in indices if i not in gone], dropped

    def describe(self, info: dict[str, Any], splits: dict[str, list[Sample]], root: Path) -> None:
        per_split = {name: self.plan.order(samples, root) for name, samples in splits.items() if samples}
        info["order_range"] = {name: [min(v), max(v)] for name, v in per_split.items()}
        info["gap"] = self.plan.gap

    def units(self, samples: list[Sample], root: Path) -> list[str] | None:
        if not samples:
            return None
        ranks = np.argsort(np.argsort(self.plan.order(samples, root), kind="stable"), kind="stable")
        block = max(1, self.plan.gap, math.ceil(len(samples) ** (1 / 3)))
        return [f"block {int(r) // block}" for r in ranks]


KEY_SOURCES: dict[str, type[KeySource]] = {"stratified": KeySource, "group": ByGroup, "time": ByTime}
