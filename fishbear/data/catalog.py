"""What every format reader returns: samples per split plus the label vocabulary.

Readers differ only in how they find images and targets on disk; everything downstream (splits,
datasets, tasks, reports) sees this one form, whatever the format or the task kind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One image and its target; ``target`` is a class index for ``classify``."""

    image: Path
    target: Any


@dataclass
class Catalog:
    """Samples by split name (``train``, ``valid``, ``test``) and the class names, index = label."""

    splits: dict[str, list[Sample]]
    classes: list[str]
    kind: str = "classify"
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class and split, for reports and sanity checks (classification targets)."""
        out: dict[str, dict[str, int]] = {}
        for split, samples in self.splits.items():
            per_class = Counter(self.classes[s.target] for s in samples if isinstance(s.target, int))
            out[split] = {name: per_class.get(name, 0) for name in self.classes}
        return out
