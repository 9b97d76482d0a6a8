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
    """One image and its target: a class index (``classify``), a tuple of tag indices
    (``multilabel``), the mask file (``segment``) or K x 2 pixel coordinates (``points``)."""

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
        """Images per class (or tag) and split, for reports and sanity checks; empty for kinds whose
        targets are not labels (masks, points)."""
        out: dict[str, dict[str, int]] = {}
        if self.kind not in ("classify", "multilabel"):
            return out
        for split, samples in self.splits.items():
            per_class = Counter(self.classes[i] for s in samples
                                for i in ((s.target,) if isinstance(s.target, int) else s.target))
            out[split] = {name: per_class.get(name, 0) for name in self.classes}
        return out
