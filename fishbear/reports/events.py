"""Visits in a video from per-frame scores: what a video-trap user wants is "a fish came at 2:14
and stayed 6 s", not 168 independent guesses.

A fish stays for several frames, so one frame's score is noisy evidence and its neighbours' are
not independent: scores are smoothed with a centred moving average over ``window`` frames, the
frames whose smoothed score reaches ``threshold`` are kept, and each run of such frames is one
event (start, end, peak score and the frame of the peak).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

NEGATIVE_PREFIXES = ("no_", "not_", "no-", "not-")
NEGATIVE_NAMES = ("nothing", "empty", "background", "none")


def default_target(classes: list[str]) -> str | None:
    """The class whose visits are events: of two classes, the one not named as an absence
    (``fish`` of ``fish``/``no_fish``); a single class (a detector's) is its own target."""
    if len(classes) == 1:
        return classes[0]
    present = [c for c in classes if not c.lower().startswith(NEGATIVE_PREFIXES) and c.lower() not in NEGATIVE_NAMES]
    return present[0] if len(present) == 1 else None


def smooth(scores: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` frames (shorter at the ends); 1 leaves scores as they are."""
    scores = np.asarray(scores, dtype=np.float64)
    if window <= 1 or len(scores) == 0:
        return scores
    kernel = np.ones(int(window))
    total = np.convolve(scores, kernel, mode="same")
    count = np.convolve(np.ones_like(scores), kernel, mode="same")
    return total / count


@dataclass
class Event:
    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    frames: int
    peak_score: float
    peak_frame: int
    peak_time: float


def find_events(frames: list[int], times: list[float], smoothed: np.ndarray, threshold: float,
                min_frames: int = 1) -> list[Event]:
    """Runs of consecutive frames (in the order given) whose smoothed score is ``threshold`` or more."""
    events: list[Event] = []
    above = np.asarray(smoothed) >= threshold
    i = 0
    while i < len(above):
        if not above[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(above) and above[j + 1]:
            j += 1
        if j - i + 1 >= min_frames:
            peak = i + int(np.argmax(smoothed[i:j + 1]))
            events.append(Event(frames[i], frames[j], float(times[i]), float(times[j]), j - i + 1,
                                float(smoothed[peak]), frames[peak], float(times[peak])))
        i = j + 1
    return events


def events_csv(events: list[Event]) -> str:
    buffer = io.StringIO()
    fields = list(Event.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for event in events:
        row: dict[str, Any] = asdict(event)
        row.update({k: f"{row[k]:.3f}" for k in ("start_time", "end_time", "peak_time")})
        row["peak_score"] = f"{event.peak_score:.4f}"
        writer.writerow(row)
    return buffer.getvalue()


def contact_sheet(events: list[Event], images: dict[int, np.ndarray], boxes: dict[int, list[dict[str, Any]]],
                  target: str, limit: int = 24) -> Any:
    """The peak frame of each event (the first ``limit``), titled with its time span and peak
    score; a detector's boxes drawn on it."""
    from fishbear.reports.plots import image_grid

    shown = [e for e in events if e.peak_frame in images][:limit]
    pictures = [images[e.peak_frame].astype(np.float32) / 255.0 for e in shown]
    height = max(p.shape[0] for p in pictures)
    width = max(p.shape[1] for p in pictures)
    padded = np.zeros((len(pictures), height, width, 3), dtype=np.float32)
    for k, picture in enumerate(pictures):
        padded[k, :picture.shape[0], :picture.shape[1]] = picture
    titles = [f"{target} {e.start_time:.0f}-{e.end_time:.0f} s\npeak {e.peak_score:.2f} at {e.peak_time:.0f} s" for e in shown]
    drawn = None
    if any(boxes.get(e.peak_frame) for e in shown):
        drawn = [[(np.array([b["box"] for b in boxes.get(e.peak_frame, [])]).reshape(-1, 4), "red",
                   [f"{b['score']:.2f}" for b in boxes.get(e.peak_frame, [])])] for e in shown]
    return image_grid(padded, titles, columns=4, size=3.0, boxes=drawn)
