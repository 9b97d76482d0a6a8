"""Training end to end, in process: learning, run folder, report, TensorBoard, resume."""

import json
import os
from pathlib import Path

import lightning as L
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fishbear.core.errors import CheckpointError
from fishbear.engine.checkpoint import read_meta
from fishbear.engine.resume import resume_argv
from fishbear.train import train

from .conftest import TINY, compose_train


@pytest.fixture
def tiny_run(trained_run):
    return trained_run


@pytest.mark.slow
def test_learns_shapes_well_above_chance(tmp_path):
    """The default recipe, scaled down: 400 training images at 64 px, 16 epochs of 25 steps (15 s):
    a learning benchmark, so slow; the fast suite's kind tests learn too, and the full default run
    (tests/test_slow.py) must reach 0.95."""
    cfg = compose_train(["data.source.train=100", "data.source.valid=10", "data.source.test=25",
                         "data.num_workers=0", "data.batch_size=16", "trainer.max_epochs=16", "trainer.num_sanity_val_steps=0",
                         "data.augment=null", "callbacks=none", "logger=none", "trainer.enable_checkpointing=false"], tmp_path)
    report = train(cfg)
    assert report["data"]["sizes"]["test"] == 100
    # chance is 0.25; 40 or more right of 100 by chance has probability 6e-4. Measured with seeds
    # 42, 1, 2: 0.61, 0.66, 0.71 (8 epochs gave 0.50-0.67: too near the bound).
    # The full default run (tests/test_slow.py) must reach 0.95.
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
    from fishbear.engine.checkpoint import read_meta

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


KILL = "FISHBEAR_TEST_KILL"  # set: the crash callbacks fire (the run is "killed"); unset: the resume runs on


class CrashAtEpoch(L.Callback):
    """Stands in for a killed process: dies when the given epoch starts, while ``$FISHBEAR_TEST_KILL``
    is set. The resume runs with the same overrides (a kill changes none) and the variable unset."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and os.environ.get(KILL):
            raise RuntimeError("killed")


class CrashAtStep(L.Callback):
    """Dies in the middle of an epoch, after the given optimiser step (while ``$FISHBEAR_TEST_KILL`` is set)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and os.environ.get(KILL):
            raise RuntimeError("killed")


def killed(run, monkeypatch) -> None:
    """Run ``run()`` until the crash callback kills it."""
    monkeypatch.setenv(KILL, "1")
    with pytest.raises(RuntimeError, match="killed"):
        run()
    monkeypatch.delenv(KILL)


def test_a_run_killed_at_a_random_step_resumes_to_the_same_final_metrics(tmp_path, monkeypatch):
    """Same seed, same run: augmentation seeded, each epoch's randomness from the seed and the
    epoch. Four runs with one seed scored four accuracies (0.2725-0.2550) before."""
    import random

    overrides = TINY + ["trainer.max_epochs=3", "logger=none", "callbacks.batch_grid.val_images=0"]
    whole = train(compose_train(overrides, tmp_path / "whole"))
    step = random.Random().randint(5, 11)  # epochs hold 4 steps: somewhere in epoch 2 or 3
    crash = ["+callbacks.crash._target_=tests.test_train.CrashAtStep", f"+callbacks.crash.step={step}"]
    killed(lambda: train(compose_train(overrides + crash, tmp_path / "killed")), monkeypatch)
    resumed = train(compose_train(overrides + crash + ["ckpt_path=last"], tmp_path / "killed"))
    assert resumed["epochs"] == whole["epochs"] == 3
    for name, value in whole["metrics"].items():
        assert resumed["metrics"][name] == pytest.approx(value, abs=1e-6), (step, name, resumed["metrics"], whole["metrics"])


def test_killed_run_resumes_in_its_folder_from_last_checkpoint(tmp_path, monkeypatch):
    overrides = TINY + ["trainer.max_epochs=3", "logger=none",
                        "+callbacks.crash._target_=tests.test_train.CrashAtEpoch", "+callbacks.crash.epoch=2"]
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


def test_channels_last_runs_correctly_on_cpu(tmp_path):
    """channels_last is the default on CPU too (faster for convnet and mobilenet_v2 there)."""
    cfg = compose_train(TINY + ["logger=none"], tmp_path)
    report = train(cfg)
    assert report["config"]["channels_last"] is True
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["state_dict"]["network.stem.0.weight"].is_contiguous(memory_format=torch.channels_last)


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


def test_report_files_are_written_as_a_pair(tmp_path):
    from fishbear.core.atomic import atomic_write_together, text_writer

    atomic_write_together({tmp_path / "report.json": text_writer("{}\n"), tmp_path / "report.md": text_writer("# old\n")})
    with pytest.raises(AttributeError):
        atomic_write_together({tmp_path / "report.json": text_writer("{\"new\": 1}\n"),
                               tmp_path / "report.md": text_writer(None)})
    assert (tmp_path / "report.json").read_text() == "{}\n" and (tmp_path / "report.md").read_text() == "# old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]


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
