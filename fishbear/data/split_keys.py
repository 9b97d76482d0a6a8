"""What holds a dataset's items together when a split holds some out: nothing but their class,
a group (a fish, a camera, a patient), or their place in time (frames of a video), read from the
file names or a CSV; the held-out parts and k-fold folds each makes (:mod:`fishbear.data.splits`)."""

from __future__ import annotations

import csv
import math
import re
from collections import Counter, defaultdict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np

from fishbear.core.errors import DataError
from fishbear.data.catalog import Sample

# the last number in a file's name: video1_frame_120.jpg -> 120, frame_000042.jpg -> 42
DEFAULT_ORDER_PATTERN = r"(\d+)(?!.*\d)"


def check_fraction(fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")


def stratified_indices(indices: list[int], strata: list[Hashable], fraction: float,
                        seed: int) -> tuple[list[int], list[int]]:
    check_fraction(fraction)
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


def group_keys(plan: Any, samples: list[Sample], root: Path) -> list[str]:
    """Each sample's group: from ``plan.group_csv``, else the first capture of ``plan.group_pattern``
    in its path relative to the root."""
    if plan.group_csv:
        path = root / plan.group_csv
        table = _csv_column(path, plan.group_column, root)
        return [_lookup(table, s, root, path) for s in samples]
    pattern = re.compile(plan.group_pattern or "")
    keys = []
    for sample in samples:
        relative = _relative(sample.image, root)
        found = pattern.search(relative)
        if not found or not found.groups() or found.group(1) is None:
            raise DataError(f"{sample.image}: data.group_pattern={plan.group_pattern!r} finds no group in "
                            f"'{relative}' (the path relative to data.root). Fix the pattern (its first "
                            "capture group is the key) or list the groups in data.group_csv.")
        keys.append(found.group(1))
    return keys


def frame_order(plan: Any, samples: list[Sample], root: Path) -> list[float]:
    """Each sample's place in time: from ``plan.order_csv``, else the frame number in its name."""
    if plan.order_csv:
        path = root / plan.order_csv
        table = _csv_column(path, ["time", "frame", "order"], root)
        values = [_lookup(table, s, root, path) for s in samples]
        source = str(path)
    else:
        pattern = re.compile(plan.order_pattern or DEFAULT_ORDER_PATTERN)
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

    def __init__(self, plan: Any) -> None:  # a fishbear.data.splits.SplitPlan
        self.plan = plan

    def by(self) -> str:
        return "class (stratified random)"

    def keys(self, pool: list[Sample], root: Path) -> list[Any]:
        return [None] * len(pool)

    def holdout(self, indices: list[int], strata: list[Hashable], keys: list[Any], fraction: float,
                seed: int) -> tuple[list[int], list[int], list[int]]:
        keep, held = stratified_indices(indices, strata, fraction, seed)
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
        return list(group_keys(self.plan, pool, root))

    def holdout(self, indices: list[int], strata: list[Hashable], keys: list[Any], fraction: float,
                seed: int) -> tuple[list[int], list[int], list[int]]:
        """About ``fraction`` of the items, in whole groups; class shares kept where the groups allow."""
        from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

        check_fraction(fraction)
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
        per_split = {name: sorted(set(group_keys(self.plan, samples, root))) for name, samples in splits.items() if samples}
        info["groups"] = {name: len(keys) for name, keys in per_split.items()}
        info["group_names"] = {name: keys[:20] for name, keys in per_split.items()}
        info["groups_in_two_splits"] = _shared(per_split)

    def units(self, samples: list[Sample], root: Path) -> list[str] | None:
        return group_keys(self.plan, samples, root)


class ByTime(KeySource):
    def by(self) -> str:
        plan = self.plan
        return f"order from {plan.order_csv}" if plan.order_csv else f"order /{plan.order_pattern or DEFAULT_ORDER_PATTERN}/"

    def keys(self, pool: list[Sample], root: Path) -> list[Any]:
        return list(frame_order(self.plan, pool, root))

    def holdout(self, indices: list[int], strata: list[Hashable], keys: list[Any], fraction: float,
                seed: int) -> tuple[list[int], list[int], list[int]]:
        """The last ``fraction`` of the items in time order; ``gap`` items before it dropped."""
        check_fraction(fraction)
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
        per_split = {name: frame_order(self.plan, samples, root) for name, samples in splits.items() if samples}
        info["order_range"] = {name: [min(v), max(v)] for name, v in per_split.items()}
        info["gap"] = self.plan.gap

    def units(self, samples: list[Sample], root: Path) -> list[str] | None:
        if not samples:
            return None
        ranks = np.argsort(np.argsort(frame_order(self.plan, samples, root), kind="stable"), kind="stable")
        block = max(1, self.plan.gap, math.ceil(len(samples) ** (1 / 3)))
        return [f"block {int(r) // block}" for r in ranks]


KEY_SOURCES: dict[str, type[KeySource]] = {"stratified": KeySource, "group": ByGroup, "time": ByTime}
