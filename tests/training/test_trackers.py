"""``logger=mlflow`` against a real MLflow tracking server started here on 127.0.0.1 (SQLite
backend, artifacts kept by the server), its local default, and ``logger=wandb`` offline."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY, compose_train

mlflow = pytest.importorskip("mlflow")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` as a team runs it: a SQLite store and the artifacts behind the server."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{folder / 'store.db'}", "--artifacts-destination", str(folder / "artifacts")]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(folder / "server.log", "w"),
                              env={**os.environ, "MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE": "true"})
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((folder / "server.log").read_text()[-2000:]) from None
            time.sleep(0.5)
    yield uri, folder
    server.terminate()
    server.wait(timeout=30)


def _runs(uri: str, experiment: str = "fishbear") -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])


def _artifacts(uri: str, run_id: str, path: str | None = None) -> set[str]:
    from mlflow.tracking import MlflowClient

    client, out = MlflowClient(uri), set()
    for item in client.list_artifacts(run_id, path):
        out |= _artifacts(uri, run_id, item.path) if item.is_dir else {item.path}
    return out


@pytest.mark.slow
def test_a_run_lands_in_a_real_mlflow_server_with_its_metrics_and_artifacts(mlflow_server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from fishbear.train import train

    uri, folder = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "one_run")
    train(compose_train([*TINY, "logger=[tensorboard,mlflow]", "trainer.max_epochs=2"], tmp_path))
    (run,) = _runs(uri, "one_run")
    assert run.info.status == "FINISHED"
    assert run.data.params["choice/model"] == "convnet" and run.data.params["max_epochs"] == "2"
    assert run.data.tags["run_dir"] == str(tmp_path.resolve())
    history = MlflowClient(uri).get_metric_history(run.info.run_id, "val/loss")
    assert len(history) == 2 and all(point.value > 0 for point in history)  # one value per epoch
    assert "test/acc" in run.data.metrics
    files = _artifacts(uri, run.info.run_id)
    assert {"report/report.json", "report/report.md"} <= files
    assert any(path.endswith(".ckpt") for path in files), files  # the checkpoint, kept by the server
    assert list((folder / "artifacts").rglob("report.json"))
    assert not (tmp_path / "mlruns").exists() and not (Path.cwd() / "mlruns").exists()


def test_without_a_server_mlflow_writes_under_the_outputs_root_only(tmp_path, monkeypatch):
    from fishbear.train import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("FISHBEAR_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "outputs" / "run"
    train(compose_train([*TINY, "logger=mlflow"], run))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]
    (found,) = _runs(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    assert list((tmp_path / "outputs" / "mlartifacts").rglob("report.json"))
    assert found.data.tags["run_dir"] == str(run.resolve())


@pytest.mark.slow
def test_a_sweeps_trials_are_runs_of_one_group(mlflow_server, tmp_path):
    uri, _ = mlflow_server
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": "a_sweep"}
    result = subprocess.run([sys.executable, "-m", "fishbear.train", "-m", *TINY, "logger=mlflow", "trainer.lr=1e-3,3e-3",
                             f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=REPO, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = _runs(uri, "a_sweep")
    assert len(runs) == 2 and {r.data.tags["sweep"] for r in runs} == {"sweep"}
    names = sorted(r.data.tags["mlflow.runName"] for r in runs)
    assert names[0].startswith("sweep/0: ") and "trainer.lr=0.001" in names[0]
    assert names[1].startswith("sweep/1: ") and "trainer.lr=0.003" in names[1]


def test_wandb_offline_writes_its_run_files_in_the_run_folder(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from fishbear.train import train

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc: offline
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / ".config" / "wandb"))
    run = tmp_path / "run"
    train(compose_train([*TINY, "logger=wandb"], run))
    (offline,) = list((run / "wandb").glob("offline-run-*"))
    (events,) = list(offline.glob("run-*.wandb"))
    deadline = time.monotonic() + 60  # wandb's own service writes the run file; on a busy machine, after finish()
    while b"val/loss" not in events.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert b"choice/model" in events.read_bytes() and b"val/loss" in events.read_bytes()  # settings, metrics
    saved = {p.name for p in (offline / "files").iterdir()}
    assert {"report.json", "report.md"} <= saved


def test_a_tracker_that_is_not_installed_is_one_line(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    from fishbear.core.errors import ConfigError
    from fishbear.training.trackers import mlflow_logger

    with pytest.raises(ConfigError, match=r"pip install 'fishbear\[trackers\]'"):
        mlflow_logger(str(tmp_path), str(tmp_path))


def test_every_tracker_composes_alone_and_beside_the_others():
    cfg = compose_train(["logger=[tensorboard,csv,mlflow,wandb]"])
    assert list(cfg.logger) == ["tensorboard", "csv", "mlflow", "wandb"]
    assert cfg.logger.mlflow._target_ == "fishbear.training.trackers.mlflow_logger"
    assert cfg.logger.wandb._target_ == "fishbear.training.trackers.wandb_logger"
