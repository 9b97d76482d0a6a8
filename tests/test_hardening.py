"""A checkpoint is data, not code: opening one, rebuilding its network, sorting frames by its
class names and resuming a run folder run nothing the files name."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fishbear.core.errors import CheckpointError
from fishbear.engine.checkpoint import load_checkpoint, network_from_checkpoint
from fishbear.models import NETWORK_BUILDERS

from .conftest import CONF_DIR, REPO, run_cli


class _Payload:
    """What a hostile pickle carries: unpickling it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def _tampered(trained_run, tmp_path: Path, change) -> Path:
    run_dir, _ = trained_run
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    change(checkpoint)
    path = tmp_path / "shared.ckpt"
    torch.save(checkpoint, path)
    return path


def test_a_pickled_payload_in_a_checkpoint_is_refused_not_run(trained_run, tmp_path):
    marker = tmp_path / "payload-ran"
    path = _tampered(trained_run, tmp_path, lambda c: c["fishbear"].update(note=_Payload(marker)))
    with pytest.raises(CheckpointError, match="cannot be read as a checkpoint of tensors and plain data"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("model_cfg", [
    {"_target_": "shutil.copyfile", "src": "/etc/hostname", "dst": "copied"},
    {"_target_": "fishbear.models.simple.ConvNet", "widths": {"_target_": "shutil.copyfile", "src": "/etc/hostname",
                                                              "dst": "copied"}},
    {"_target_": "fishbear.models.simple.ConvNet", "_args_": ["x"]},
])
def test_a_checkpoint_builds_only_fishbears_networks_from_plain_settings(trained_run, tmp_path, monkeypatch, model_cfg):
    monkeypatch.chdir(tmp_path)
    path = _tampered(trained_run, tmp_path, lambda c: c["fishbear"].update(model_cfg=model_cfg))
    with pytest.raises(CheckpointError, match="not one of fishbear's networks|not a model setting"):
        network_from_checkpoint(load_checkpoint(path))
    assert not (tmp_path / "copied").exists()


def test_every_model_config_names_a_registered_builder():
    targets = {yaml.safe_load(p.read_text())["_target_"] for p in (CONF_DIR / "model").glob("*.yaml")}
    assert targets <= NETWORK_BUILDERS


def test_class_names_from_a_checkpoint_stay_folders_under_out(trained_run, tmp_path):
    from fishbear.data.shapes import render_scene
    from fishbear.data.video import write_video
    from fishbear.frames import main as frames

    names = ["../../escaped", "/tmp/absolute", "..", "star"]
    path = _tampered(trained_run, tmp_path, lambda c: c["fishbear"].update(classes=names))
    rng = np.random.default_rng(0)
    video = write_video(tmp_path / "clip.mp4", [render_scene(rng, 64, [k]).image for k in ("circle", "square")], 2)
    out = tmp_path / "deep" / "er" / "out"
    table = frames([f"video={video}", f"out={out}", f"sort_with={path}"])
    written = [p for p in tmp_path.rglob("*.jpg")]
    assert written and all(out in p.parents for p in written), written
    rows = list(csv.DictReader(table.open()))
    assert all(Path(row["file"]).parts[0] not in ("..", "/") for row in rows)


def test_resume_refuses_a_run_folder_that_names_code(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["model._target_=os.system", "trainer.max_epochs=1"]))
    result = run_cli(["-m", "fishbear.train", "--resume", str(run)], cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "overrides a _target_ (model._target_=os.system)" in result.stderr
    assert (REPO / "fishbear" / "train.py").is_file()


@pytest.mark.slow  # several processes at once
def test_two_runs_started_at_once_get_folders_of_their_own(tmp_path):
    """Both start in the same second; before, they shared ``<date>/<time>/`` and one's
    checkpoints and report overwrote the other's."""
    import json
    import subprocess
    import sys

    from .conftest import TINY

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    runs = [subprocess.Popen([sys.executable, "-m", "fishbear.train", *TINY, "logger=none", f"trainer.lr={lr}"],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for lr in ("0.001", "0.002")]
    for run in runs:
        _, err = run.communicate(timeout=240)
        assert run.returncode == 0, err[-2000:]
    reports = sorted((tmp_path / "outputs").rglob("report.json"))
    assert len(reports) == 2 and reports[0].parent != reports[1].parent
    for report in reports:
        overrides = yaml.safe_load((report.parent / ".hydra" / "overrides.yaml").read_text())
        assert json.loads(report.read_text())["config"]["overrides"] == overrides
    assert {json.loads(r.read_text())["config"]["lr"] for r in reports} == {0.001, 0.002}


@pytest.mark.parametrize("override, message", [
    ("trainer.max_epochs=0", r"trainer.max_epochs=0: a run trains for 1 epoch or more"),
    ("trainer.max_epochs=-3", r"trainer.max_epochs=-3: a run trains for 1 epoch or more"),
    ("data.batch_size=0", r"data.batch_size=0: it must be a whole number of 1 or more"),
    ("data.image_size=0", r"data.image_size=0: it must be a whole number of 1 or more"),
    ("data.image_size=7", r"data.image_size=7 is too small for this network \(model=convnet\): it needs at least \d+ px"),
    # each was a traceback (issue: "a wrong run is refused, not reported")
    ("data.valid_pct=0", r"data.valid_pct=0: the share of train held out for validation .* above 0 and below 1"),
    ("data.valid_pct=1", r"data.valid_pct=1: the share of train held out"),
    ("data.valid_pct=1.5", r"data.valid_pct=1.5: the share of train held out"),
    ("data.image_size=[64,64,3]", r"data.image_size=\[64, 64, 3\]: give one side .* or \[height, width\]"),
    ("data.image_size=[64]", r"data.image_size=\[64\]: give one side \(data.image_size=224\) or \[height, width\]"),
    ("seed=-1", r"seed=-1: give a whole number from 0 to 4294967295"),
    ("data.num_workers=-2", r"data.num_workers=-2: give 0 \(load in the main process\) or more"),
    ("optimized_metric=test/acc", r"optimized_metric=test/acc: a sweep or search chooses by validation"),
])
def test_impossible_settings_are_refused_before_any_training(override, message, tmp_path):
    from fishbear.core.errors import ConfigError
    from fishbear.train import train

    from .conftest import TINY, compose_train

    with pytest.raises(ConfigError, match=message):
        train(compose_train([*TINY, "logger=none", override], tmp_path))
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("content", [b"not a checkpoint\n", b"PK\x03\x04truncated"])
def test_a_train_ckpt_path_that_is_no_checkpoint_is_one_line(content, tmp_path):
    from fishbear.train import train

    from .conftest import TINY, compose_train

    bad = tmp_path / "last.ckpt"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"last\.ckpt cannot be read as a checkpoint"):
        train(compose_train([*TINY, "logger=none", f"ckpt_path={bad}"], tmp_path / "run"))


def test_images_are_read_upright_and_at_full_range(tmp_path):
    from PIL import Image

    from fishbear.data.images import load_rgb

    gradient = (np.arange(64, dtype=np.uint16)[None, :] * 1040).repeat(8, axis=0)  # 0 .. 65520
    Image.fromarray(gradient).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    read = load_rgb(tmp_path / "deep.png")[..., 0]
    assert read.shape == (8, 64) and (read == 255).mean() < 0.05 and read[0, 32] == pytest.approx(130, abs=2)

    portrait = Image.new("RGB", (40, 20), (200, 30, 30))  # stored on its side, as phone cameras do
    exif = portrait.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view
    portrait.save(tmp_path / "phone.jpg", exif=exif)
    assert load_rgb(tmp_path / "phone.jpg").shape == (40, 20, 3)


def test_file_names_that_are_not_utf8_reach_reports_and_pictures(tmp_path):
    from fishbear.core.atomic import atomic_write_text
    from fishbear.reports.plots import image_grid

    name = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: a surrogate in Python's str
    text = atomic_write_text(tmp_path / "report.md", f"| `{name}` |\n").read_text()
    assert "caf\\xe9.jpg" in text
    figure = image_grid(np.zeros((1, 8, 8, 3)), [name])
    figure.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch):
    import errno

    from fishbear.core.errors import FishbearError
    from fishbear.train import train

    from .conftest import TINY, compose_train

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("fishbear.core.atomic.os.fsync", full)
    with pytest.raises(FishbearError, match=r"Could not write .*: No space left on device\. Free some space"):
        train(compose_train([*TINY, "logger=none"], tmp_path))
    assert not list(tmp_path.rglob("*.tmp"))
