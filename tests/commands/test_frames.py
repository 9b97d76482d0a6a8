"""A checkpoint is data, not code: opening one, rebuilding its network, sorting frames by its
class names and resuming a run folder run nothing the files name."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fishbear.data.video import read_frames
from fishbear.engine.inference import Predictor
from fishbear.frames import main as frames_main
from tests.conftest import file_digests, one_error, requires_shared, run_cli, tampered_checkpoint, write_video

FISH_LABELS = {"positive": "fish", "testImages": "fish", "negative": "no_fish"}


def _fish_frames(root) -> dict:
    """Frame number (second of the video) -> (file, label), from video1_frame_<N>.jpg."""
    frames = {}
    for folder, label in FISH_LABELS.items():
        for path in (root / folder).glob("video1_frame_*.jpg"):
            frames[int(path.stem.rsplit("_", 1)[1])] = (path, label)
    return frames


def _fish_video(frames: dict, numbers: list, path):
    import numpy as np
    from PIL import Image

    from tests.conftest import write_video

    images = [np.asarray(Image.open(frames[n][0]).convert("RGB")) for n in numbers]
    return write_video(path, images, fps=1)


def _ramp_video(path: Path, n: int = 10, fps: int = 4) -> Path:
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(n)]
    return write_video(path, frames, fps)


class BrightIsFish(Predictor):
    """A fish/no_fish "classifier" that calls a bright frame fish: the real classify kind's
    results, with scores known in advance, to check visits end to end."""

    def __init__(self) -> None:
        from fishbear.kinds import get_kind

        self.kind = get_kind("classify")
        from tests.conftest import model_meta

        self.meta = model_meta("classify", ["fish", "no_fish"])

    def predict_batch(self, images):

        fish = torch.tensor([0.95 if float(np.mean(image)) > 128 else 0.05 for image in images])
        return self.kind.interpret(torch.stack([fish, 1 - fish], 1), [i.shape[:2] for i in images], self.meta)


def test_class_names_from_a_checkpoint_stay_folders_under_out(trained_run, tmp_path):
    from fishbear.data.shapes import render_scene
    from fishbear.data.video import write_video
    from fishbear.frames import main as frames

    names = ["../../escaped", "/tmp/absolute", "..", "star"]
    path = tampered_checkpoint(trained_run, tmp_path, lambda c: c["fishbear"].update(classes=names))
    rng = np.random.default_rng(0)
    video = write_video(tmp_path / "clip.mp4", [render_scene(rng, 64, [k]).image for k in ("circle", "square")], 2)
    out = tmp_path / "deep" / "er" / "out"
    table = frames([f"video={video}", f"out={out}", f"sort_with={path}"])
    written = [p for p in tmp_path.rglob("*.jpg")]
    assert written and all(out in p.parents for p in written), written
    rows = list(csv.DictReader(table.open()))
    assert all(Path(row["file"]).parts[0] not in ("..", "/") for row in rows)


# -- frames ----------------------------------------------------------------------------------------
def test_frames_never_writes_over_the_users_frames(tmp_path, capsys):
    from fishbear.data.shapes import render_scene
    from fishbear.frames import main
    from tests.conftest import write_video

    rng = np.random.default_rng(0)
    video = write_video(tmp_path / "clip.mp4", [render_scene(rng, 64, [k]).image for k in ("circle", "star")], 2)
    out = tmp_path / "out"
    out.mkdir()
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(out / "frame_000000.jpg")  # the user's own
    (out / "frames.csv").write_text("frame,note\n0,my notes\n")
    before = file_digests(out)
    line = one_error(main, [f"video={video}", f"out={out}"], capsys)
    assert "exists and was not written by fishbear" in line and "another out=" in line
    assert file_digests(out) == before
    fresh = tmp_path / "fresh"
    main([f"video={video}", f"out={fresh}"])
    main([f"video={video}", f"out={fresh}"])  # into its own earlier output
    assert "replaced" in capsys.readouterr().out
    (tmp_path / "a-file").write_text("x")
    assert "is a file; the output here is a folder" in one_error(main, [f"video={video}", f"out={tmp_path / 'a-file'}"],
                                                              capsys)


def test_frames_from_a_video_made_of_the_real_fish_frames(tmp_path):
    import csv

    from fishbear.frames import main as frames_main

    frames = _fish_frames(requires_shared("fish", "video1_output"))
    assert len(frames) == 168 and sorted(frames) == list(range(1, 169))
    video = _fish_video(frames, list(range(1, 13)), tmp_path / "video1.mp4")
    table = frames_main([f"video={video}", f"out={tmp_path / 'frames'}", "every=4", "enhance=true"])
    rows = list(csv.DictReader(table.open()))
    assert [(r["frame"], r["time"]) for r in rows] == [("0", "0.000"), ("4", "4.000"), ("8", "8.000")]
    from PIL import Image

    assert Image.open(tmp_path / "frames" / rows[1]["file"]).size == (600, 336)


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


def test_bad_videos_get_one_clear_line(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video")
    result = run_cli(["-m", "fishbear.frames", f"video={fake}", f"out={tmp_path / 'out'}"], cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{fake} cannot be opened as a video" in result.stderr
    missing = run_cli(["-m", "fishbear.frames", f"video={tmp_path / 'gone.mp4'}", f"out={tmp_path / 'out'}"],
                      cwd=tmp_path, timeout=60)
    assert missing.returncode == 2 and "gone.mp4 does not exist" in missing.stderr
