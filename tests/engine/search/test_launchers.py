"""Runs launched by Hydra's launcher plugins: submitit (here its local executor, on a cluster
SLURM) and joblib put every run of a sweep in one sweep folder and write its summary; the SLURM
config sizes jobs from the trainer; a run folder entered again continues its run."""

from __future__ import annotations

import json

import pytest

from fishbear.core.errors import ConfigError
from fishbear.train import train
from tests.conftest import TINY, compose_train, run_cli

SWEEP = ["trainer.lr=1e-3,1e-2", "logger=none", *TINY]


def _one_sweep(tmp_path):
    sweeps = [p for p in (tmp_path / "outputs" / "sweeps").glob("*/*") if p.is_dir()]
    assert len(sweeps) == 1, sweeps  # every job resolved the parent's folder, not its own process's
    return sweeps[0]


def _check_sweep(sweep):
    for run in ("0", "1"):
        assert json.loads((sweep / run / "report.json").read_text())["data"]["sizes"]["test"] == 16
    lrs = sorted(line.split(",")[3] for line in (sweep / "summary.csv").read_text().splitlines()[1:])
    assert lrs == ["0.001", "0.01"]


@pytest.mark.slow  # a process per job, each importing torch
def test_submitit_local_runs_each_job_in_its_own_process_into_one_sweep_folder(tmp_path):
    result = run_cli(["-m", "fishbear.train", "-m", "hydra/launcher=submitit_local", *SWEEP], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = _one_sweep(tmp_path)
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2  # two submitit jobs ran
    _check_sweep(sweep)
    assert "Sweep summary:" in result.stdout


@pytest.mark.slow
def test_joblib_runs_jobs_in_parallel_into_one_sweep_folder(tmp_path):
    result = run_cli(["-m", "fishbear.train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *SWEEP],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    _check_sweep(_one_sweep(tmp_path))


def test_slurm_launcher_is_sized_from_the_trainer():
    cfg = compose_train(["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                         "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert launcher.partition == "gpu" and launcher.max_num_timeout >= 1
    cpu = compose_train(["hydra/launcher=slurm", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=3"])
    assert (cpu.hydra.launcher.tasks_per_node, cpu.hydra.launcher.gpus_per_node) == (3, None)
    unsized = compose_train(["hydra/launcher=slurm", "trainer=ddp"])  # devices=auto
    with pytest.raises(Exception, match="trainer.devices=auto: under SLURM say how many devices") as err:
        _ = unsized.hydra.launcher.tasks_per_node  # resolving it is what raises
    assert isinstance(err.value.__cause__, ConfigError) or "ConfigError" in str(err.value)


def test_a_run_folder_entered_again_continues_its_run(tmp_path):
    """What a requeued SLURM job does: the same command, the same folder, more epochs to go."""
    run_dir = tmp_path / "run"
    first = train(compose_train([*TINY, "trainer.max_epochs=1", "logger=none"], run_dir))
    assert first["epochs"] == 1
    again = train(compose_train([*TINY, "trainer.max_epochs=2", "logger=none"], run_dir))
    assert again["epochs"] == 2
    assert again["fit_seconds"] > first["fit_seconds"]  # the first process's fit time counts


def test_runs_started_side_by_side_make_a_missing_dataset_once(tmp_path):
    """What submitit and joblib do with `-m`: several processes find the embedded data missing at
    once. One writes it, the others wait and read it (before, a later writer deleted the folder
    another run was reading: "cannot be read as an image (missing)")."""
    import subprocess
    import sys

    code = ("import os, sys, time; from fishbear.data.shapes import ShapesSource; from fishbear.kinds import get_kind; "
            "from fishbear.formats.imagefolder import ImageFolderReader; "
            "root = ShapesSource(train=40, valid=5, test=5, image_size=32).prepare(sys.argv[1], get_kind('classify')); "
            "first = os.stat(root).st_ino; time.sleep(1.0); "
            "print(len(ImageFolderReader()(root).splits['train']), first, os.stat(root).st_ino)")
    root = tmp_path / "shapes"
    runs = [subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(3)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err[-2000:] for _, err in outputs]
    seen = [out.split() for out, _ in outputs]
    assert {s[0] for s in seen} == {"160"}  # 40 a shape, 4 shapes: each run read all of them
    # one folder, written once: no run's folder was replaced under it by a later writer
    assert len({s[1] for s in seen} | {s[2] for s in seen}) == 1, seen
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".shapes.") and not p.name.endswith(".lock")]
