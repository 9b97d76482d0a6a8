"""What the speed work changed keeps the figures: training metrics updated in batches of steps
equal per-step updates, the logged training loss is the batch-weighted mean, compiling keeps
checkpoint names, the decode cache gives the decoded pixels, and a CPU run plans its cores."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from tests.conftest import REPO, run_cli


def test_the_step_timer_counts_optimiser_steps_across_epochs(tmp_path):
    """benchmarks' StepTimer starts at the warm-up's global step once: a run longer than an
    epoch is timed over its steps (it restarted at batch ``warmup`` of every epoch, and the rate
    came out 2.7x too high)."""
    import sys

    import lightning as L

    from tests.conftest import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    from overhead import InMemory, InMemoryData, StepTimer

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(3 * 8 * 8, 2)

        def training_step(self, batch, batch_idx):  # noqa: ANN001
            return torch.nn.functional.cross_entropy(self.layer(batch["image"].flatten(1)), batch["target"] % 2)

        def configure_optimizers(self):  # noqa: ANN201
            return torch.optim.SGD(self.parameters(), lr=0.01)

    starts = []

    class Spy(StepTimer):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            before = self.start
            super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
            if self.start != before:
                starts.append(trainer.global_step)

    timer = Spy(warmup=3)
    trainer = L.Trainer(max_steps=12, max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        callbacks=[timer], default_root_dir=tmp_path)
    trainer.fit(Tiny(), datamodule=InMemoryData(InMemory(20, 8, 4), 4))   # 5 steps an epoch
    assert starts == [3] and timer.end > timer.start > 0


@pytest.mark.timing
@pytest.mark.slow
def test_overhead_benchmark_prints_the_per_step_ratio_and_the_fixed_cost(tmp_path):
    result = run_cli([str(REPO / "benchmarks" / "overhead.py"), "--steps", "16", "--warmup", "3", "--rounds", "3"],
                     cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    match = re.search(r"per-step ratio fishbear/plain: median (\d+\.\d+)", result.stdout)
    assert match and 0.5 < float(match.group(1)) < 2.0, result.stdout
    assert re.search(r"plain PyTorch loop: \d+\.\d images/s \(\d+\.\d+ ms a step\), fixed cost -?\d+\.\d+ s", result.stdout)
    fixed = re.search(r"fishbear \(Hydra \+ Lightning\): .*fixed cost (-?\d+\.\d+) s", result.stdout)
    assert fixed and float(fixed.group(1)) > 0, result.stdout  # a Trainer costs something to set up
    start_up = re.search(r"start-up of a fresh process: (\d+\.\d+) s to import what a run imports, (\d+\.\d+) s",
                         result.stdout)
    assert start_up and float(start_up.group(1)) >= float(start_up.group(2)) * 0.8, result.stdout


@pytest.mark.timing
@pytest.mark.slow
def test_loader_benchmark_prints_real_against_synthetic_training(tmp_path):
    result = run_cli([str(REPO / "benchmarks" / "loader.py"), "--steps", "8", "--warmup", "2", "--rounds", "1",
                      "data.source.train=64", "data.source.valid=8", "data.source.test=8"], cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    match = re.search(r"ratio real/synthetic: median (\d+\.\d+)", result.stdout)
    assert match and 0.05 < float(match.group(1)) < 2.0, result.stdout
    assert re.search(r"loader alone: \d+\.\d images/s", result.stdout)


@pytest.mark.slow
def test_the_pack_benchmark_prints_both_sides_and_their_ratios(tmp_path):
    result = run_cli([str(REPO / "benchmarks" / "pack.py"), "--case", "small", "--images", "64", "--image-size", "32",
                      "--epochs", "1", "--train-batches", "2", "--s3"], cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    match = re.search(r"ratio pack/folder: (\d+\.\d+) x the images/s, (\d+\.\d+) x the disk", result.stdout)
    assert match and float(match.group(1)) > 0 and 0.5 < float(match.group(2)) < 3, result.stdout
    assert re.search(r"training images/s: folder \d+\.\d, pack \d+\.\d, streamed \d+\.\d", result.stdout), result.stdout
    for epoch in (1, 2):  # the pack streamed from moto's server on 127.0.0.1
        assert re.search(rf"streamed epoch {epoch}: local pack +\d+\.\d images/s, s3 +\d+\.\d images/s", result.stdout)


@pytest.mark.slow
def test_the_gpu_benchmark_runs_end_to_end_on_cpu(tmp_path):
    """benchmarks/gpu.py --device cpu: every row (the ceiling, the plain loops, fishbear in memory
    and on a JPEG folder) at toy sizes, its table written as JSON and Markdown."""

    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "images" / cls).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "images" / cls / f"{i}.jpg")
    rows = "ceiling,plain_uint8,plain_float32,lightning,fishbear,fishbear_bare,fishbear_folder"
    result = run_cli([str(REPO / "benchmarks" / "gpu.py"), "--device", "cpu", "--images", str(tmp_path / "images"),
                      "--replicate", "2", "--rows", rows, "--out", str(tmp_path / "out")], cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = json.loads((tmp_path / "out" / "cpu.json").read_text())
    names = [row["name"] for row in table["rows"]]
    assert names == ["ceiling (batch on the device)", "plain, uint8 pinned", "plain, float32 pageable",
                     "Lightning, in memory", "fishbear, in memory", "fishbear, in memory, no callbacks or logger",
                     "fishbear, JPEG folder"]
    assert all(row["images_per_s"] > 0 and row["syncs_per_step"] is not None for row in table["rows"])
    assert "| fishbear, JPEG folder |" in (tmp_path / "out" / "cpu.md").read_text()


@pytest.mark.slow
def test_the_backbones_benchmark_writes_each_family_against_the_baseline(tmp_path):
    out = tmp_path / "backbones.json"
    result = run_cli([str(REPO / "benchmarks" / "backbones.py"), "--rounds", "1", "--only",
                      "resnet18 (torchvision),convnext_atto", "--json", str(out)], cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["network"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"resnet18 (torchvision)", "convnext_atto"}
    assert 0.3 < rows["resnet18 (torchvision)"]["predict_ratio"] < 3  # the baseline against itself
    assert rows["convnext_atto"]["parameters_m"] < rows["resnet18 (torchvision)"]["parameters_m"]
    assert all(row["train_images_per_s"] > 0 for row in rows.values())
