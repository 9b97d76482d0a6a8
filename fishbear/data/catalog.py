"""What every format reader returns: samples per split plus the label vocabulary.

Readers differ only in how they find images and targets on disk; everything downstream (splits,
datasets, tasks, reports) sees this one form, whatever the format or the task kind.
"""

from __future__ import annotations

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
    kind: str  # the task kind of the targets the reader found (the data module checks it against its own)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
