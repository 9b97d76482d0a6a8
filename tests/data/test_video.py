"""Video to frames (``fishbear.frames``), sorting frames with a classifier, and predict on a video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fishbear.data.video import enhance, gray_world, read_frames
from tests.conftest import write_video


def _ramp_video(path: Path, n: int = 10, fps: int = 4) -> Path:
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(n)]
    return write_video(path, frames, fps)


def test_read_frames_numbers_and_times_every_nth(tmp_path):
    video = _ramp_video(tmp_path / "ramp.mp4")
    frames = list(read_frames(video, every=3))
    assert [f.index for f in frames] == [0, 3, 6, 9]
    assert [f.time for f in frames] == pytest.approx([0.0, 0.75, 1.5, 2.25])
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert [round(float(f.image.mean())) for f in frames] == pytest.approx([0, 60, 120, 180], abs=3)


def test_enhance_balances_a_blue_green_cast_and_raises_contrast():
    rng = np.random.default_rng(0)
    scene = rng.integers(60, 200, (64, 64, 3)).astype(np.float32)
    murky = np.clip(scene * np.array([0.35, 0.8, 0.9]) * 0.6 + 20, 0, 255).astype(np.uint8)
    balanced = gray_world(murky)
    means = balanced.reshape(-1, 3).mean(axis=0)
    assert means.max() - means.min() < 2.0 < np.ptp(murky.reshape(-1, 3).mean(axis=0))
    enhanced = enhance(murky)
    assert enhanced.shape == murky.shape and enhanced.dtype == np.uint8
    assert enhanced.std() > balanced.std()
