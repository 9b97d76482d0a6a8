"""The one internal form of box labels, whatever tool wrote them (VOC, VIA, VoTT, CNTK).

A detection sample's target is a :class:`Boxes`: ``xmin, ymin, xmax, ymax`` in pixels of the
image, a class name per box and VOC's ``difficult`` flag. Readers only parse; clipping boxes to
the image (or refusing them), counting what was changed, and building the class vocabulary
happen here, once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample

log = logging.getLogger(__name__)
OUTSIDE_POLICIES = ("clip", "reject")
SWAPPED_POLICIES = ("fix", "reject")


@dataclass(frozen=True)
class Boxes:
    xyxy: np.ndarray                         # N x 4 float32, pixels, origin top-left
    labels: tuple[str, ...]
    difficult: tuple[bool, ...] = field(default=())
    codes: tuple[int, ...] = field(default=())  # class indices, set once the vocabulary is known

    def __post_init__(self) -> None:
        if not self.difficult:
            object.__setattr__(self, "difficult", (False,) * len(self.labels))

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def empty(cls) -> Boxes:
        return cls(np.zeros((0, 4), dtype=np.float32), ())

    @classmethod
    def of(cls, rows: list[tuple[float, float, float, float, str, bool]]) -> Boxes:
        if not rows:
            return cls.empty()
        return cls(np.array([r[:4] for r in rows], dtype=np.float32).reshape(-1, 4),
                   tuple(r[4] for r in rows), tuple(bool(r[5]) for r in rows))


@dataclass
class BoxStats:
    """What :func:`box_catalog` changed, for the log and the report."""

    clipped: int = 0
    swapped: int = 0
    rejected: int = 0
    difficult_dropped: int = 0
    degenerate: int = 0


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the header alone."""
    from fishbear.data.images import UNREADABLE

    try:
        with Image.open(path) as image:
            return image.size
    except UNREADABLE as err:
        raise DataError(f"Image file {path} cannot be read ({type(err).__name__}: {err}).") from None


def fit_to_image(boxes: Boxes, width: int, height: int, source: str, on_outside: str,
                 stats: BoxStats, on_swapped: str = "fix") -> Boxes:
    """Put swapped corners (``xmax < xmin`` or ``ymax < ymin``, which some tools write when a box
    is drawn from the bottom right) back in order, or refuse them (``on_swapped='reject'``); clip
    boxes that cross the image border (or refuse them: ``on_outside='reject'``), each refusal
    naming the file; drop boxes with no area left; count what was changed."""
    if on_outside not in OUTSIDE_POLICIES:
        raise DataError(f"data.reader.on_outside={on_outside!r}: use 'clip' or 'reject'")
    if on_swapped not in SWAPPED_POLICIES:
        raise DataError(f"data.reader.on_swapped={on_swapped!r}: use 'fix' or 'reject'")
    if not len(boxes):
        return boxes
    xyxy = boxes.xyxy.copy()
    finite = np.isfinite(xyxy).all(axis=1)
    if not finite.all():  # NaN or inf: never a box, and dropping it "without area" would hide the broken file
        i = int(np.flatnonzero(~finite)[0])
        raise DataError(f"{source}: box {xyxy[i].tolist()} ({boxes.labels[i]}) has a coordinate that is not a finite "
                        "number; fix the label file (or export it again).")
    swapped = (xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1])
    if swapped.any() and on_swapped == "reject":
        i = int(np.flatnonzero(swapped)[0])
        raise DataError(f"{source}: box {xyxy[i].round(1).tolist()} ({boxes.labels[i]}) has its corners swapped "
                        "(max before min). Fix the label, or set data.reader.on_swapped=fix to reorder them.")
    stats.swapped += int(swapped.sum())
    xyxy = np.concatenate([np.minimum(xyxy[:, :2], xyxy[:, 2:]), np.maximum(xyxy[:, :2], xyxy[:, 2:])], axis=1)
    limits = np.array([width, height, width, height], dtype=np.float32)
    outside = (xyxy < 0).any(axis=1) | (xyxy > limits).any(axis=1)
    if outside.any() and on_outside == "reject":
        i = int(np.flatnonzero(outside)[0])
        raise DataError(f"{source}: box {xyxy[i].round(1).tolist()} ({boxes.labels[i]}) lies outside its "
                        f"{width}x{height} image. Fix the label, or set data.reader.on_outside=clip.")
    stats.clipped += int(outside.sum())
    xyxy = np.clip(xyxy, 0, limits)
    keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    stats.degenerate += int((~keep).sum())
    return Boxes(xyxy[keep], tuple(label for label, k in zip(boxes.labels, keep) if k),
                 tuple(d for d, k in zip(boxes.difficult, keep) if k))


def box_catalog(entries: list[tuple[Path, Boxes]], on_outside: str = "clip", keep_difficult: bool = True,
                split: str = "train", source: str = "labels", on_swapped: str = "fix") -> tuple[Catalog, BoxStats]:
    """A detection catalog from ``(image, boxes)`` pairs (images without boxes are negatives);
    classes are every label used, sorted. What was clipped or dropped is logged: real exports
    hold tracked boxes that drifted off the frame (the fish VOC and CNTK files: x up to 1533 on
    600-pixel frames), which clipping leaves with no area."""
    stats = BoxStats()
    samples = []
    for image, boxes in entries:
        if not keep_difficult and any(boxes.difficult):
            keep = [not d for d in boxes.difficult]
            stats.difficult_dropped += keep.count(False)
            boxes = Boxes(boxes.xyxy[keep], tuple(label for label, k in zip(boxes.labels, keep) if k),
                          tuple(d for d, k in zip(boxes.difficult, keep) if k))
        width, height = image_size(image)
        samples.append(Sample(image, fit_to_image(boxes, width, height, f"{source}, image {image}", on_outside, stats,
                                                  on_swapped)))
    classes = sorted({label for sample in samples for label in sample.target.labels})
    code = {name: i for i, name in enumerate(classes)}
    samples = [Sample(s.image, replace(s.target, codes=tuple(code[label] for label in s.target.labels)))
               for s in samples]
    if stats.clipped or stats.degenerate or stats.difficult_dropped or stats.swapped:
        log.warning("%s: %d box(es) had their corners swapped and were reordered; %d crossed their image's border "
                    "and were clipped; %d left without area were dropped; %d difficult box(es) dropped", source,
                    stats.swapped, stats.clipped, stats.degenerate, stats.difficult_dropped)
    return Catalog(splits={split: samples}, classes=classes, kind="detect"), stats
