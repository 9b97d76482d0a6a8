"""Video to frames (``fishbear.frames``), sorting frames with a classifier, and predict on a video."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fishbear.data.video import enhance, gray_world, read_frames
from fishbear.engine.inference import Predictor
from fishbear.frames import main as frames_main
from fishbear.predict import main as predict_main

from .conftest import run_cli, write_video


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


def test_frames_command_writes_numbered_jpegs_and_their_times(tmp_path, capsys):
    video = _ramp_video(tmp_path / "trap.mp4")
    table = frames_main([f"video={video}", f"out={tmp_path / 'out'}", "every=2"])
    rows = list(csv.DictReader(table.open()))
    assert [r["frame"] for r in rows] == ["0", "2", "4", "6", "8"]
    assert [float(r["time"]) for r in rows] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == [r["file"] for r in rows]
    assert rows[2]["file"] == "frame_000004.jpg"
    assert abs(np.asarray(Image.open(tmp_path / "out" / "frame_000004.jpg")).mean() - 80) < 3
    assert "5 frames of" in capsys.readouterr().out


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


def test_sort_with_files_frames_by_predicted_class(trained_run, tmp_path):
    from fishbear.data.shapes import render_scene

    run_dir, report = trained_run
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    rng = np.random.default_rng(1)
    images = [render_scene(rng, 64, [kind]).image for kind in ("circle", "square", "star") * 2]
    video = write_video(tmp_path / "shapes.mp4", images, fps=2)
    table = frames_main([f"video={video}", f"out={tmp_path / 'sorted'}", f"sort_with={ckpt}", "review_below=0.9",
                         "batch_size=4", "events.target=circle", "events.smooth=1"])
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 6
    predictor = Predictor.from_checkpoint(ckpt)
    expected = [predictor.predict(f.image) for f in read_frames(video)]
    for row, want in zip(rows, expected):
        assert row["class"] == want["label"] and float(row["confidence"]) == pytest.approx(want["probability"], abs=1e-4)
        assert row["file"] == f"{row['class']}/frame_{int(row['frame']):06d}.jpg"
        assert (tmp_path / "sorted" / row["file"]).is_file()
        circle = want["probabilities"]["circle"]
        assert float(row["score_circle"]) == pytest.approx(circle, abs=1e-4) == float(row["smoothed_circle"])
        assert row["review"] == ("yes" if max(circle, 1 - circle) < 0.9 else "")
    assert {p.parent.name for p in (tmp_path / "sorted").rglob("*.jpg")} <= set(report["classes"])
    assert (tmp_path / "sorted" / "events.csv").is_file()


def test_without_a_clear_event_class_frames_are_sorted_without_visits(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    video = _ramp_video(tmp_path / "clip.mp4", n=2)
    table = frames_main([f"video={video}", f"out={tmp_path / 'o'}", f"sort_with={run_dir / 'checkpoints' / 'best.ckpt'}",
                         "review_below=0.99"])
    rows = list(csv.DictReader(table.open()))
    assert list(rows[0])[:6] == ["frame", "time", "file", "class", "confidence", "review"]
    assert all(row["review"] == ("yes" if float(row["confidence"]) < 0.99 else "") for row in rows)
    assert not (tmp_path / "o" / "events.csv").exists()
    assert "name the class: events.target=<class>" in capsys.readouterr().out


class BrightIsFish(Predictor):
    """A fish/no_fish "classifier" that calls a bright frame fish: the real classify kind's
    results, with scores known in advance, to check visits end to end."""

    def __init__(self) -> None:
        from fishbear.kinds import get_kind

        self.kind = get_kind("classify")
        from .conftest import model_meta

        self.meta = model_meta("classify", ["fish", "no_fish"])

    def predict_batch(self, images):
        import torch

        fish = torch.tensor([0.95 if float(np.mean(image)) > 128 else 0.05 for image in images])
        return self.kind.interpret(torch.stack([fish, 1 - fish], 1), [i.shape[:2] for i in images], self.meta)


def test_sorted_video_gets_one_event_per_visit_and_a_contact_sheet(tmp_path, monkeypatch):
    visits = set(range(5, 11)) | set(range(18, 25))
    bright = (visits - {8}) | {14}  # a dark frame inside a visit, a lone bright frame outside
    images = [np.full((48, 64, 3), 220 if i in bright else 30, np.uint8) for i in range(30)]
    video = write_video(tmp_path / "trap.mp4", images, fps=2)
    monkeypatch.setattr(Predictor, "from_checkpoint", classmethod(lambda cls, *a, **k: BrightIsFish()))
    table = frames_main([f"video={video}", f"out={tmp_path / 'sorted'}", f"sort_with={tmp_path / 'any.ckpt'}"])
    events = list(csv.DictReader((tmp_path / "sorted" / "events.csv").open()))
    assert [(int(e["start_frame"]), int(e["end_frame"])) for e in events] == [(5, 10), (18, 24)]
    assert [float(e["start_time"]) for e in events] == pytest.approx([2.5, 9.0])
    assert all(float(e["peak_score"]) == pytest.approx(0.95) for e in events)
    assert (tmp_path / "sorted" / "events.png").stat().st_size > 0
    rows = {int(r["frame"]): r for r in csv.DictReader(table.open())}
    # the frame's own call disagrees with its smoothed neighbourhood: marked for review
    assert rows[8]["class"] == "no_fish" and rows[8]["review"] == "yes"
    assert rows[14]["class"] == "fish" and rows[14]["review"] == "yes"
    assert rows[2]["review"] == "" and rows[20]["review"] == ""


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


def test_predict_on_a_video_writes_frame_rows(trained_run, tmp_path):
    run_dir, report = trained_run
    video = _ramp_video(tmp_path / "clip.mp4", n=6)
    output = predict_main([f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", f"input={video}", "every=2"])
    assert output == tmp_path / "clip.predictions.csv"
    rows = list(csv.DictReader(output.open()))
    assert [(r["frame"], r["time"]) for r in rows] == [("0", "0.000"), ("2", "0.500"), ("4", "1.000")]
    assert all(r["label"] in report["classes"] for r in rows)


def test_bad_videos_get_one_clear_line(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video")
    result = run_cli(["-m", "fishbear.frames", f"video={fake}", f"out={tmp_path / 'out'}"], cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{fake} cannot be opened as a video" in result.stderr
    missing = run_cli(["-m", "fishbear.frames", f"video={tmp_path / 'gone.mp4'}", f"out={tmp_path / 'out'}"],
                      cwd=tmp_path, timeout=60)
    assert missing.returncode == 2 and "gone.mp4 does not exist" in missing.stderr
