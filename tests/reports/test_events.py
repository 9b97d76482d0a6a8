"""Video to frames (``fishbear.frames``), sorting frames with a classifier, and predict on a video."""

from __future__ import annotations

import numpy as np
import pytest


def test_smoothing_and_runs():
    from fishbear.reports.events import default_target, find_events, smooth

    scores = np.array([0, 0, 1, 1, 1, 0, 0, 1, 0, 0], dtype=float)
    smoothed = smooth(scores, 3)
    assert smoothed[0] == pytest.approx(0) and smoothed[3] == pytest.approx(1) and smoothed[7] == pytest.approx(1 / 3)
    events = find_events(list(range(10)), [i / 2 for i in range(10)], smoothed, 0.5)
    assert [(e.start_frame, e.end_frame, e.peak_frame) for e in events] == [(2, 4, 3)]
    assert find_events(list(range(10)), list(range(10)), smooth(scores, 1), 0.5, min_frames=2)[0].frames == 3
    assert default_target(["fish", "no_fish"]) == "fish" and default_target(["bear", "not_bear"]) == "bear"
    assert default_target(["fish"]) == "fish" and default_target(["a", "b", "c"]) is None
