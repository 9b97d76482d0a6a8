"""The issue's headline goals, measured as a user would run them (``make test-all``)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fishbear.engine.checkpoint import read_meta
from fishbear.train import train
from tests.conftest import REPO, TINY, compose_train, run_cli


@pytest.fixture
def tiny_run(trained_run):
    return trained_run


@pytest.mark.timing
@pytest.mark.slow
def test_default_run_reaches_95_percent_in_under_3_minutes(tmp_path, monkeypatch):
    monkeypatch.setenv("FISHBEAR_DATA", str(tmp_path / "cold-cache"))  # generation is part of the time
    started = time.perf_counter()
    result = run_cli(["-m", "fishbear.train"], cwd=tmp_path, timeout=600)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Run folder:" in result.stdout and "test/acc=" in result.stdout
    reports = list((tmp_path / "outputs").rglob("report.json"))
    assert len(reports) == 1
    run_dir = reports[0].parent
    assert (run_dir / ".hydra" / "overrides.yaml").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    report = json.loads(reports[0].read_text())
    print(f"default run: test/acc={report['metrics']['test/acc']:.4f} in {seconds:.1f} s")
    assert report["metrics"]["test/acc"] >= 0.95
    assert report["data"]["sizes"]["test"] == 400
    assert seconds < 180


@pytest.mark.long
@pytest.mark.slow
def test_the_fish_frames_recipe_holds_on_the_time_split(tmp_path, monkeypatch):
    """The guard against the edge (issue 26): the default recipe, trained on the first 120 s of the
    video trap and sorting the 48 later frames from an mp4, calls fish with F1 >= 0.80. Over seeds
    1-5 it scored 0.885-0.969 (experiments/fish_frames/README.md); the recipe before ranged 0.27-0.94."""
    from tests.conftest import requires_shared, use_imagenet_mobilenet

    shared = requires_shared("fish", "video1_output").parents[1]
    use_imagenet_mobilenet(tmp_path / "torch", monkeypatch)
    result = run_cli([str(REPO / "experiments" / "fish_frames" / "run.py"), "--protocol", "time", "--seeds", "3",
                      "--shared", str(shared), "--keep", str(tmp_path / "scratch")], cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    print(last)
    f1 = float(re.search(r"f1=([\d.]+)", last).group(1))
    assert f1 >= 0.80, last


@pytest.mark.slow
def test_learns_shapes_well_above_chance(tmp_path):
    """The default recipe, scaled down: 400 training images at 64 px, 16 epochs of 25 steps (15 s):
    a learning benchmark, so slow; the fast suite's kind tests learn too, and the full default run
    (tests/commands/test_train.py, slow) must reach 0.95."""
    cfg = compose_train(["data.source.train=100", "data.source.valid=10", "data.source.test=25",
                         "data.num_workers=0", "data.batch_size=16", "trainer.max_epochs=16", "trainer.num_sanity_val_steps=0",
                         "data.augment=null", "callbacks=none", "logger=none", "trainer.enable_checkpointing=false"], tmp_path)
    report = train(cfg)
    assert report["data"]["sizes"]["test"] == 100
    # chance is 0.25; 40 or more right of 100 by chance has probability 6e-4. Measured with seeds
    # 42, 1, 2: 0.61, 0.66, 0.71 (8 epochs gave 0.50-0.67: too near the bound).
    # The full default run (tests/commands/test_train.py, slow) must reach 0.95.
    assert report["metrics"]["test/acc"] >= 0.4, report["metrics"]


def test_run_folder_holds_checkpoints_report_and_figures(tiny_run):
    run_dir, report = tiny_run
    for name in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "report.json", "report.md",
                 "confusion_matrix.png", "train_batch.png"):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.rglob("*.tmp")), "temporary files left behind"
    on_disk = json.loads((run_dir / "report.json").read_text())
    assert on_disk["metrics"] == report["metrics"]
    assert set(on_disk["metrics"]) == {"test/acc", "test/f1", "test/loss"}
    assert on_disk["classes"] == ["circle", "square", "star", "triangle"]
    assert on_disk["kind"] == "classify" and on_disk["epochs"] == 2
    assert on_disk["config"]["choices"]["model"] == "convnet"
    assert on_disk["versions"]["torch"] == torch.__version__.split("+")[0]
    assert set(on_disk["versions"]) >= {"python", "fishbear", "torch", "torchvision", "lightning", "hydra-core"}
    assert on_disk["device"]["accelerator"] in ("cpu", "cuda")
    assert on_disk["wall_seconds"] > on_disk["fit_seconds"] > 0
    matrix = on_disk["classify"]["confusion_matrix"]
    assert sum(map(sum, matrix)) == on_disk["data"]["sizes"]["test"] == 16
    assert on_disk["classify"]["accuracy"] == pytest.approx(on_disk["metrics"]["test/acc"])
    per_class = on_disk["classify"]["classification_report"]
    assert set(on_disk["classes"]) <= set(per_class)
    worst = on_disk["classify"]["top_losses"]
    assert len(worst) == 9 and worst == sorted(worst, key=lambda r: -r["loss"])
    assert all(Path(r["file"]).is_file() and Path(r["file"]).parent.name == r["actual"] for r in worst)
    assert (run_dir / "top_losses.png").is_file()
    md = (run_dir / "report.md").read_text()
    assert "## Top losses" in md
    assert "| circle |" in md and "confusion_matrix.png" in md and "precision" in md


def test_checkpoint_carries_what_inference_needs(tiny_run):
    run_dir, _ = tiny_run

    meta = read_meta(run_dir / "checkpoints" / "best.ckpt")
    assert meta.kind == "classify" and meta.classes == ("circle", "square", "star", "triangle")
    assert meta.image_size == 32 and len(meta.mean) == 3
    assert meta.model_cfg["_target_"] == "fishbear.models.simple.ConvNet"


def test_tensorboard_has_losses_rates_per_group_hparams_and_pictures(tiny_run):
    run_dir, _ = tiny_run
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("train/loss_step", "train/loss_epoch", "val/loss", "val/acc", "train/acc", "test/acc",
                "lr-AdamW/stem", "lr-AdamW/stage4", "lr-AdamW/classifier", "hparams/test_acc"):
        assert tag in tags["scalars"], tag
    assert {"train/batch", "test/confusion_matrix", "val/confusion_matrix"} <= set(tags["images"])
    assert len(acc.Images("val/confusion_matrix")) == 2  # one per epoch
    plugins = acc.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugins and "_hparams_/experiment" in plugins
    assert b"test_acc" in plugins["_hparams_/experiment"]


def test_csv_logger_beside_tensorboard_writes_every_epochs_metrics(tmp_path):
    """``logger=[tensorboard,csv]``: both loggers at once; ``csv/metrics.csv`` has a row with the
    validation loss per epoch and the test figures, ``csv/hparams.yaml`` the run's settings."""
    import csv

    train(compose_train([*TINY, "logger=[tensorboard,csv]", "trainer.max_epochs=2"], tmp_path))
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    validated = [r for r in rows if r.get("val/loss")]
    assert [int(r["epoch"]) for r in validated] == [0, 1]
    assert all(float(r["val/loss"]) > 0 for r in validated)
    assert any(r.get("test/acc") for r in rows)
    assert (tmp_path / "csv" / "hparams.yaml").is_file()


def test_channels_last_runs_correctly_on_cpu(tmp_path):
    """channels_last is the default on CPU too (faster for convnet and mobilenet_v2 there)."""
    cfg = compose_train(TINY + ["logger=none"], tmp_path)
    report = train(cfg)
    assert report["config"]["channels_last"] is True
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["state_dict"]["network.stem.0.weight"].is_contiguous(memory_format=torch.channels_last)


def test_balanced_class_weights_follow_the_training_counts(tmp_path):
    """task.class_weights=balanced: each class's training loss is weighed by the inverse of its
    share of the training images; validation and test losses stay unweighted."""
    from fishbear.engine.experiment import build_experiment
    from fishbear.engine.settings import TrainerSettings

    cfg = compose_train([*TINY, "task.class_weights=balanced", "logger=none"], tmp_path)
    datamodule, task = build_experiment(cfg, TrainerSettings.from_config(cfg.trainer))
    train_split = datamodule.catalog.splits["train"]
    datamodule.catalog.splits["train"] = [s for s in train_split if s.target != 0][:18] + \
        [s for s in train_split if s.target == 0][:2]  # class 0: 2 of 20 images
    trainer = L.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0)
    trainer.fit(task, datamodule=datamodule)
    counts = torch.tensor([float(datamodule.counts()["train"][c]) for c in task.classes])
    assert torch.allclose(task._loss_weights.cpu(), counts.sum() / (4 * counts))
    assert task._loss_weights[0] == max(task._loss_weights) and task._loss_weights[0] > 2
    device = task._loss_weights.device  # the model's device (a GPU where there is one)
    outputs = torch.randn(6, 4, device=device)
    batch = {"target": torch.tensor([0, 1, 2, 3, 0, 1], device=device)}
    task.train()
    weighted = task.compute_loss(outputs, batch)
    task.eval()
    assert not torch.isclose(weighted, task.compute_loss(outputs, batch))
    assert torch.isclose(task.compute_loss(outputs, batch), torch.nn.functional.cross_entropy(outputs, batch["target"]))


@pytest.mark.gpu
def test_a_tiny_run_trains_in_mixed_precision_and_channels_last_on_the_gpu(tmp_path):
    """trainer=gpu's device path end to end: bf16 (or fp16) autocast, NHWC weights and batches,
    pinned uint8 batches normalised on the device, fused AdamW; the checkpoint loads on the CPU."""
    from fishbear.engine.inference import Predictor

    cfg = compose_train(TINY + ["trainer=gpu", "logger=none"], tmp_path)
    report = train(cfg)
    assert report["config"]["channels_last"] is True and str(cfg.trainer.precision).endswith("-mixed")
    assert all(value == value for value in report["metrics"].values())  # no NaN from the reduced precision
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["state_dict"]["network.stem.0.weight"].is_contiguous(memory_format=torch.channels_last)
    predictor = Predictor.from_checkpoint(tmp_path / "checkpoints" / "last.ckpt", device="cuda")
    assert predictor.network.training is False and next(predictor.network.parameters()).is_cuda
