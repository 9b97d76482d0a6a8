"""The one internal form of box labels, whatever tool wrote them (VOC, VIA, VoTT, CNTK).

A detection sample's target is a :class:`Boxes`: ``xmin, ymin, xmax, ymax`` in pixels of the
image as it looks (upright: the EXIF orientation a camera wrote applied, as every picture is read),
a class name per box and VOC's ``difficult`` flag. Readers only parse; turning boxes drawn on the
stored (sideways) picture upright, clipping boxes to the image (or refusing them), counting what
was changed, and building the class vocabulary happen here, once.

**Which frame a label file's boxes are in.** A photo stored on its side with an EXIF orientation
looks upright in a browser, in CVAT (since 2022), Label Studio, VIA, VoTT and Ultralytics (which
scales YOLO's normalised boxes by the upright size), but LabelImg shows and labels it as stored.
Where the label file records the image's size (VOC's ``<size>``, COCO's and CVAT's ``width`` and
``height``, Label Studio's ``original_width``), that size says which frame the boxes are in;
where it does not, or the size cannot tell (a square picture, a mirror), the format's ``frame``
setting decides (``data.reader.frame=upright|stored``; VOC defaults to ``stored``, LabelImg's
frame, the others to ``upright``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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


FRAMES = ("upright", "stored")


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of the picture as it looks (as its pixels are read), from the header."""
    return image_geometry(path)[0]


def image_geometry(path: Path) -> tuple[tuple[int, int], tuple[int, int], int]:
    """``(upright (width, height), stored (width, height), EXIF orientation)`` from the header."""
    from fishbear.data.images import UNREADABLE, orientation_of, upright_size_of

    try:
        with Image.open(path) as image:
            return upright_size_of(image), image.size, orientation_of(image)
    except UNREADABLE as err:
        raise DataError(f"Image file {path} cannot be read ({type(err).__name__}: {err}).") from None


def stored_to_upright(points: np.ndarray, orientation: int, width: int, height: int) -> np.ndarray:
    """N x 2 ``(x, y)`` on the stored ``width`` x ``height`` picture, moved where the EXIF
    ``orientation`` puts them when the picture is shown upright (as PIL's ``exif_transpose``)."""
    x, y = points[:, 0], points[:, 1]
    moved = {1: (x, y), 2: (width - x, y), 3: (width - x, height - y), 4: (x, height - y), 5: (y, x),
             6: (height - y, x), 7: (height - y, width - x), 8: (y, width - x)}[orientation]
    return np.stack(moved, axis=1).astype(np.float32)


def upright_boxes(xyxy: np.ndarray, orientation: int, width: int, height: int) -> np.ndarray:
    """Boxes drawn on the stored picture, as boxes of the upright one (corners moved, reordered)."""
    if orientation == 1 or not len(xyxy):
        return xyxy
    a = stored_to_upright(xyxy[:, :2], orientation, width, height)
    b = stored_to_upright(xyxy[:, 2:], orientation, width, height)
    return np.concatenate([np.minimum(a, b), np.maximum(a, b)], axis=1)


def frame_of(default: str, recorded: tuple[float, float] | None, upright: tuple[int, int],
             stored: tuple[int, int]) -> str:
    """Which frame a label file's boxes are in: the one whose size the file recorded, when that
    tells them apart; else the format's ``default``."""
    if default not in FRAMES:
        raise DataError(f"data.reader.frame={default!r}: use upright (the picture as it looks) or stored (as saved, "
                        "LabelImg's frame).")
    if recorded is not None and upright != stored:
        size = tuple(int(round(float(v))) for v in recorded)
        if size == tuple(upright):
            return "upright"
        if size == tuple(stored):
            return "stored"
    return default


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


def recorded_size(width: Any, height: Any) -> tuple[float, float] | None:
    """The ``(width, height)`` a label file records for its image, or None when it records none
    (blank, 0 x 0 as some exporters write, or no number): then the format's frame decides."""
    try:
        size = (float(width or 0), float(height or 0))
    except (TypeError, ValueError):
        return None
    return size if min(size) > 0 else None


def box_catalog(entries: list[tuple[Path, Boxes]] | list[tuple[Path, Boxes, tuple[float, float] | None]],
                on_outside: str = "clip", keep_difficult: bool = True, split: str = "train", source: str = "labels",
                on_swapped: str = "fix", frame: str = "upright") -> tuple[Catalog, BoxStats]:
    """A detection catalog from ``(image, boxes)`` pairs, or ``(image, boxes, the (width, height)
    the label file recorded)`` (images without boxes are negatives); classes are every label
    used, sorted. Boxes in the stored frame of a turned photo are made upright (``frame`` is the
    format's default, :func:`frame_of`). What was clipped or dropped is logged: real exports
    hold tracked boxes that drifted off the frame (the fish VOC and CNTK files: x up to 1533 on
    600-pixel frames), which clipping leaves with no area."""
    stats = BoxStats()
    samples = []
    for entry in entries:
        image, boxes = entry[0], entry[1]
        recorded = entry[2] if len(entry) > 2 else None
        if not keep_difficult and any(boxes.difficult):
            keep = [not d for d in boxes.difficult]
            stats.difficult_dropped += keep.count(False)
            boxes = Boxes(boxes.xyxy[keep], tuple(label for label, k in zip(boxes.labels, keep) if k),
                          tuple(d for d, k in zip(boxes.difficult, keep) if k))
        (width, height), stored, orientation = image_geometry(image)
        if orientation != 1 and len(boxes) and frame_of(frame, recorded, (width, height), stored) == "stored":
            boxes = replace(boxes, xyxy=upright_boxes(boxes.xyxy, orientation, *stored))
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
