"""``frames.csv`` of a cut (and sorted) video, row by row with named columns, and the review marks.

A frame sorted by a classifier or a detector is marked for review in one of two ways: with no
target class (several classes, none named as an absence) when its own confidence is below
``review_below``; with a target (``fish`` of ``fish``/``no_fish``, or a detector's class) when the
target's score smoothed over neighbouring frames is weak either way, or disagrees with the frame's
own call. The second way also finds the visits (:mod:`fishbear.reports.events`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

from fishbear.reports.events import Event, find_events, smooth


@dataclass
class FrameRow:
    """One frame written: its number, time and file (relative to the output folder); when sorted,
    the predicted class and its confidence, the target's raw and smoothed score, the review mark
    and the kind's own columns (a detector's boxes)."""

    frame: int
    time: float
    file: str
    label: str | None = None
    confidence: float | None = None
    score: float | None = None
    smoothed: float | None = None
    review: bool = False
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VisitSettings:
    """``events.*`` of ``conf/frames.yaml``: smoothing window, threshold and shortest visit."""

    smooth: int = 3
    threshold: float = 0.5
    min_frames: int = 1


def mark_by_confidence(rows: list[FrameRow], review_below: float) -> int:
    """No target class: a frame whose own confidence is below ``review_below`` is marked; returns how many."""
    for row in rows:
        row.review = row.confidence is not None and row.confidence < review_below
    return sum(row.review for row in rows)


def mark_by_visits(rows: list[FrameRow], review_below: float, visits: VisitSettings) -> list[Event]:
    """A target class: smooth its scores, mark the doubtful frames, and return the visits."""
    raw = np.array([row.score for row in rows], dtype=np.float64)
    smoothed = smooth(raw, visits.smooth)
    for row, score in zip(rows, smoothed):
        seen = score >= visits.threshold
        row.smoothed = float(score)
        row.review = bool(max(score, 1 - score) < review_below or seen != (row.score >= visits.threshold))
    return find_events([row.frame for row in rows], [row.time for row in rows], smoothed, visits.threshold,
                       visits.min_frames)


def frames_csv(rows: list[FrameRow], target: str | None) -> str:
    """The table: frame, time, file; when sorted, class, confidence, (the target's score and its
    smoothed value,) review, then the kind's columns."""
    sorted_ = any(row.label is not None for row in rows)
    extra = list(rows[0].extra) if rows else []
    header = ["frame", "time", "file"]
    if sorted_:
        header += ["class", "confidence", *([f"score_{target}", f"smoothed_{target}"] if target else []),
                   "review", *extra]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        cells = [str(row.frame), f"{row.time:.3f}", row.file]
        if sorted_:
            cells += [str(row.label), f"{row.confidence:.4f}"]
            if target:
                cells += [f"{row.score:.4f}", f"{row.smoothed:.4f}"]
            cells += ["yes" if row.review else "", *(row.extra.get(k, "") for k in extra)]
        writer.writerow(cells)
    return buffer.getvalue()
