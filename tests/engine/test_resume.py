"""A checkpoint is data, not code: opening one, rebuilding its network, sorting frames by its
class names and resuming a run folder run nothing the files name."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from fishbear.core.errors import CheckpointError
from fishbear.engine.checkpoint import read_meta
from fishbear.engine.resume import resume_argv
from fishbear.train import train
from tests.conftest import REPO, TINY, compose_train, run_cli
from tests.crashes import killed


def test_resume_refuses_a_run_folder_that_names_code(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["model._target_=os.system", "trainer.max_epochs=1"]))
    result = run_cli(["-m", "fishbear.train", "--resume", str(run)], cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "overrides a _target_ (model._target_=os.system)" in result.stderr
    assert (REPO / "fishbear" / "train.py").is_file()


@pytest.mark.parametrize("content", [b"not a checkpoint\n", b"PK\x03\x04truncated"])
def test_a_train_ckpt_path_that_is_no_checkpoint_is_one_line(content, tmp_path):
    from fishbear.train import train
    from tests.conftest import TINY, compose_train

    bad = tmp_path / "last.ckpt"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"last\.ckpt cannot be read as a checkpoint"):
        train(compose_train([*TINY, "logger=none", f"ckpt_path={bad}"], tmp_path / "run"))


def test_a_run_killed_at_a_random_step_resumes_to_the_same_final_metrics(tmp_path, monkeypatch):
    """Same seed, same run: augmentation seeded, each epoch's randomness from the seed and the
    epoch. Four runs with one seed scored four accuracies (0.2725-0.2550) before."""
    import random

    overrides = TINY + ["trainer.max_epochs=3", "logger=none", "callbacks.batch_grid.val_images=0"]
    whole = train(compose_train(overrides, tmp_path / "whole"))
    step = random.Random().randint(5, 11)  # epochs hold 4 steps: somewhere in epoch 2 or 3
    crash = ["+callbacks.crash._target_=tests.crashes.CrashAtStep", f"+callbacks.crash.step={step}"]
    killed(lambda: train(compose_train(overrides + crash, tmp_path / "killed")), monkeypatch)
    resumed = train(compose_train(overrides + crash + ["ckpt_path=last"], tmp_path / "killed"))
    assert resumed["epochs"] == whole["epochs"] == 3
    for name, value in whole["metrics"].items():
        assert resumed["metrics"][name] == pytest.approx(value, abs=1e-6), (step, name, resumed["metrics"], whole["metrics"])


def test_killed_run_resumes_in_its_folder_from_last_checkpoint(tmp_path, monkeypatch):
    overrides = TINY + ["trainer.max_epochs=3", "logger=none",
                        "+callbacks.crash._target_=tests.crashes.CrashAtEpoch", "+callbacks.crash.epoch=2"]
    killed(lambda: train(compose_train(overrides, tmp_path)), monkeypatch)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 1
    assert not (tmp_path / "report.json").exists()

    report = train(compose_train(overrides + ["ckpt_path=last"], tmp_path))  # what --resume runs
    assert report["epochs"] == 3
    resumed = torch.load(last, map_location="cpu", weights_only=False)
    assert resumed["epoch"] == 2 and resumed["global_step"] == 3 * 4  # 32 images / batch 8 per epoch


def test_resume_argv_replays_the_run_overrides(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- model=mlp\n- trainer.lr=0.01\n")
    argv = resume_argv(["train.py", "--resume", str(tmp_path), "trainer.max_epochs=3"])
    assert argv[1:] == ["model=mlp", "trainer.lr=0.01", "trainer.max_epochs=3", f"hydra.run.dir={tmp_path}",
                        "ckpt_path=last"]


def test_resuming_a_run_killed_before_its_first_checkpoint_says_start_again(tmp_path):
    with pytest.raises(CheckpointError, match=r"stopped before its first checkpoint.*nothing to resume.*Start it again"):
        train(compose_train(TINY + ["ckpt_path=last", "logger=none"], tmp_path))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    cfg = compose_train(TINY + [f"ckpt_path={tmp_path / 'nope.ckpt'}"], tmp_path)
    with pytest.raises(CheckpointError, match=r"nope\.ckpt does not exist.*--resume"):
        train(cfg)


def test_resume_extends_a_run_then_says_it_is_finished(tmp_path, capsys):
    """Before: a larger max_epochs at resume trained, then failed (OneCycleLR ran out of steps)
    with no report, and every later resume failed the same way."""
    overrides = TINY + ["logger=none"]
    first = train(compose_train(overrides + ["trainer.max_epochs=2"], tmp_path))
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = read_meta(last).provenance.fit_seconds
    stray = tmp_path / "checkpoints" / ".last.ckpt.x1y2.tmp"
    stray.write_bytes(b"half a checkpoint from a killed process")

    longer = train(compose_train(overrides + ["trainer.max_epochs=4", "ckpt_path=last"], tmp_path))
    assert longer["epochs"] == 4 and set(longer["metrics"]) == set(first["metrics"])
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 4 * 4
    assert not stray.exists()
    assert longer["fit_seconds"] > before  # summed over both processes
    assert longer["wall_seconds"] > first["wall_seconds"]
    assert json.loads((tmp_path / "report.json").read_text())["epochs"] == 4
    assert (tmp_path / "report.md").is_file()

    stamp = last.stat().st_mtime_ns
    again = train(compose_train(overrides + ["trainer.max_epochs=4", "ckpt_path=last"], tmp_path))
    assert "is finished: it has trained its 4 epoch(s)" in capsys.readouterr().out
    assert again["metrics"] == longer["metrics"] and last.stat().st_mtime_ns == stamp
