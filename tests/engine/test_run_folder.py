"""A checkpoint is data, not code: opening one, rebuilding its network, sorting frames by its
class names and resuming a run folder run nothing the files name."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from fishbear.core.errors import CheckpointError, ConfigError
from tests.conftest import TINY, compose_train, run_cli


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".fishbear.lock"}


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """One tiny run trained in a given folder, as torchrun and the README's searches use them."""
    cwd = tmp_path_factory.mktemp("given")
    run = cwd / "outputs" / "fixed"
    result = run_cli(["-m", "fishbear.train", *TINY, "logger=none", f"hydra.run.dir={run}"], cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd, run


# -- a run folder is fishbear's or nobody's ---------------------------------------------------------------------
def _users_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "report.md").write_text("my notes\n")
    (path / "checkpoints").mkdir()
    (path / "checkpoints" / "best.ckpt").write_bytes(b"my model")
    return path


@pytest.mark.slow  # several processes at once
def test_two_runs_started_at_once_get_folders_of_their_own(tmp_path):
    """Both start in the same second; before, they shared ``<date>/<time>/`` and one's
    checkpoints and report overwrote the other's."""
    import json
    import subprocess
    import sys

    from tests.conftest import TINY

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


@pytest.mark.slow  # two processes: a run, then the command that must be refused
def test_other_overrides_in_a_run_folder_are_refused_before_anything_is_written(run_folder):
    cwd, run = run_folder
    before = _files(run)
    result = run_cli(["-m", "fishbear.train", *TINY, "logger=none", f"hydra.run.dir={run}", "model=mlp",
                      "trainer.lr=0.05"], cwd=cwd, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {run} holds another run (the folder's run has (nothing else); this command has "
                           "model=mlp trainer.lr=0.05)") and f"--resume {run}" in line
    assert _files(run) == before  # overrides.yaml, config.yaml, report and checkpoints as they were


@pytest.mark.slow
def test_a_folder_in_use_is_refused_through_the_cli(run_folder):
    from fishbear.engine.run_folder import FolderLock

    cwd, run = run_folder
    lock = FolderLock(run).acquire()  # as a running process holds it
    try:
        result = run_cli(["-m", "fishbear.train", "--resume", str(run), "trainer.max_epochs=2"], cwd=cwd, timeout=120)
    finally:
        lock.release()
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"error: {run} is in use by process" in result.stderr and "one run at a time" in result.stderr


def test_a_run_folders_overrides_are_checked_before_hydra_writes(tmp_path):
    """What ``python -m fishbear.train`` does first (the slow test above runs it as a process)."""
    from fishbear.engine.run_folder import refuse_other_overrides

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["model=convnet", "trainer.max_epochs=2"]))
    refuse_other_overrides([f"hydra.run.dir={run}", "model=convnet", "trainer.max_epochs=5"])  # a resume may extend
    with pytest.raises(ConfigError, match=r"holds another run \(the folder's run has model=convnet; this command has "
                                          r"model=mlp\)"):
        refuse_other_overrides([f"hydra.run.dir={run}", "model=mlp", "trainer.max_epochs=2"])
    refuse_other_overrides(["-m", f"hydra.run.dir={run}", "model=mlp"])  # a sweep's jobs are checked in the job


def test_a_second_process_in_a_folder_in_use_is_refused(tmp_path):
    from fishbear.engine.run_folder import FolderLock
    from fishbear.train import train

    lock = FolderLock(tmp_path).acquire()  # as a running process holds it
    try:
        with pytest.raises(ConfigError, match=r"is in use by process \d+ on .*: a run folder holds one run at a time"):
            train(compose_train([*TINY, "logger=none"], tmp_path))
    finally:
        lock.release()
    assert not (tmp_path / "checkpoints").exists()


def test_resume_refuses_a_run_whose_data_changed(tmp_path):
    from fishbear.train import train

    root = tmp_path / "data"
    for cls in ("a", "b"):
        for i in range(6):
            path = root / "train" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((16, 16, 3), 40 * i if cls == "a" else 255 - 40 * i, np.uint8)).save(path)
    overrides = ["data=folder", f"data.root={root}", "model=mlp", "data.image_size=16", "data.batch_size=4",
                 "data.num_workers=0", "trainer.num_sanity_val_steps=0", "logger=none"]
    run = tmp_path / "run"
    train(compose_train([*overrides, "trainer.max_epochs=1"], run))
    for i in range(6, 9):  # the user adds images while the run is stopped
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "train" / "a" / f"{i}.png")
    with pytest.raises(CheckpointError, match=r"last.ckpt was trained on other data than data.root holds now "
                                              r"\(train: 10 -> 12 images; valid: 2 -> 3 images\)"):
        train(compose_train([*overrides, "trainer.max_epochs=2", "ckpt_path=last"], run))


def test_a_checkpoint_of_another_kind_or_model_is_refused_as_ckpt_path(trained_detector, trained_run, tmp_path):
    from fishbear.train import train

    detector, _ = trained_detector
    with pytest.raises(CheckpointError, match=r"is a 'detect' checkpoint, but a 'classify' one is needed"):
        train(compose_train([*TINY, "logger=none", f"ckpt_path={detector}"], tmp_path / "a"))
    run_dir, _ = trained_run  # a convnet's checkpoint, continued as an mlp
    with pytest.raises(CheckpointError, match=r"holds a network built with other model settings \(_target_"):
        train(compose_train([*TINY, "logger=none", "model=mlp", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"],
                            tmp_path / "b"))


def test_a_job_finding_another_runs_checkpoint_refuses_and_puts_its_files_back(trained_run, tmp_path):
    """A grid sweep run again into the same sweep folder with another grid: job 0 finds the folder
    of the earlier job 0 (its checkpoint names its overrides); Hydra has just rewritten the
    folder's .hydra files, which are put back."""
    from fishbear.train import train

    run_dir, _ = trained_run
    folder = tmp_path / "sweep" / "0"
    shutil.copytree(run_dir, folder)
    (folder / ".hydra").mkdir(exist_ok=True)
    ours = ["data.source.train=8", "trainer.lr=0.001"]
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["trainer.lr=0.5"]))  # what Hydra just wrote

    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["fishbear"]["run"] = {"overrides": ours, "hydra_files": {"overrides.yaml": yaml.safe_dump(ours)}}
    torch.save(checkpoint, folder / "checkpoints" / "last.ckpt")
    with pytest.raises(ConfigError, match=r"holds another run \(the folder's run has trainer.lr=0.001; this "
                                          r"command has .*trainer.lr=0.5 "):
        train(compose_train([*TINY, "logger=none", "trainer.lr=0.5"], folder))
    assert yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text()) == ours


def test_the_overrides_a_resume_may_change_are_named():
    from fishbear.engine.run_folder import RESUMABLE_KEYS, comparable

    assert comparable(["trainer.max_epochs=5", "ckpt_path=last", "model=mlp", "hydra.run.dir=x"]) == ["model=mlp"]
    assert set(RESUMABLE_KEYS) == {"trainer.max_epochs", "trainer.max_steps", "ckpt_path", "data.num_workers",
                                   "trainer.enable_progress_bar"}


@pytest.mark.slow  # two sweeps of one tiny job each, as processes
def test_a_sweep_run_again_with_another_grid_refuses_its_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    base = [sys.executable, "-m", "fishbear.train", "-m", *TINY, "logger=none", f"hydra.sweep.dir={sweep}"]
    first = subprocess.run([*base, "trainer.lr=0.001"], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert first.returncode == 0, first.stderr[-3000:]
    saved = (sweep / "0" / ".hydra" / "overrides.yaml").read_text()
    report = (sweep / "0" / "report.json").read_bytes()
    second = subprocess.run([*base, "trainer.lr=0.002"], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert second.returncode == 2 and "holds another run" in second.stderr, second.stderr[-3000:]
    assert (sweep / "0" / ".hydra" / "overrides.yaml").read_text() == saved
    assert (sweep / "0" / "report.json").read_bytes() == report


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_folder_of_the_users_is_refused_before_hydra_writes(command, tmp_path, trained_run):
    folder = _users_folder(tmp_path / "mine")
    before = _files(folder)
    ckpt = trained_run[0] / "checkpoints" / "best.ckpt"
    args = TINY + ["logger=none"] if command == "train" else [f"ckpt={ckpt}", "data=shapes", *TINY[:5]]
    result = run_cli(["-m", f"fishbear.{command}", *args, f"hydra.run.dir={folder}"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {folder} holds files fishbear did not write "
                                                            "(checkpoints, report.md)")
    assert _files(folder) == before and not (folder / ".hydra").exists()


def test_the_owner_rule_in_the_job_and_for_each_command(tmp_path, trained_run):
    from fishbear.engine.run_folder import check_owner, owner_problem, refuse_foreign_folder

    assert owner_problem(tmp_path / "new", "train") is None
    started = tmp_path / "died"  # Hydra's start of a job that died before it began: taken up again
    (started / ".hydra").mkdir(parents=True)
    (started / "train.log").write_text("")
    check_owner(started, "train")
    assert (started / ".fishbear-run.json").is_file()
    with pytest.raises(ConfigError, match="folder of a fishbear train"):
        check_owner(started, "evaluate")          # evaluate never writes its report over a training run's
    assert owner_problem(trained_run[0], "train") is None  # a run folder of fishbear's own (resumed)
    mine = _users_folder(tmp_path / "mine")
    with pytest.raises(ConfigError, match="holds files fishbear did not write"):
        check_owner(mine, "train")                # a sweep's job finding a user's folder
    assert not (mine / ".fishbear-run.json").exists()
    sweep = tmp_path / "sweep"
    (sweep / "notes").mkdir(parents=True)
    with pytest.raises(ConfigError, match="is no sweep folder"):
        refuse_foreign_folder(["-m", f"hydra.sweep.dir={sweep}", "trainer.lr=1,2"], "train")
    (sweep / "notes").rmdir()
    (sweep / "0").mkdir()                  # a killed search's folder: its trials and its study
    (sweep / "optuna.db").write_bytes(b"")
    (sweep / ".trials.csv.7rtxqx4k.tmp").write_text("trial,lr\n0,")  # killed while it wrote its trials table
    refuse_foreign_folder(["-m", f"hydra.sweep.dir={sweep}", "trainer.lr=1,2"], "train")
    assert not (sweep / ".trials.csv.7rtxqx4k.tmp").exists() and (sweep / "optuna.db").exists()
    (sweep / ".notes.txt.abc.tmp").write_text("a temporary file of another program's")
    with pytest.raises(ConfigError, match=r"is no sweep folder"):
        refuse_foreign_folder(["-m", f"hydra.sweep.dir={sweep}", "trainer.lr=1,2"], "train")
