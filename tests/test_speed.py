"""What the speed work changed keeps the figures: training metrics updated in batches of steps
equal per-step updates, the logged training loss is the batch-weighted mean, compiling keeps
checkpoint names, the decode cache gives the decoded pixels, and a CPU run plans its cores."""

import os

import numpy as np
import pytest
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from fishbear.core.runtime import cpu_training_workers
from fishbear.data.decoded import DecodedImages
from fishbear.data.images import load_rgb
from fishbear.training.sync_free import BatchedUpdates, RunningLoss

from .conftest import TINY, compose_train


def _metrics():
    return MetricCollection({"acc": MulticlassAccuracy(num_classes=5), "f1": MulticlassF1Score(num_classes=5)})


def test_batched_updates_give_the_figures_of_per_step_updates():
    g = torch.Generator().manual_seed(0)
    steps = [(torch.randn(int(n), 5, generator=g), torch.randint(0, 5, (int(n),), generator=g))
             for n in torch.randint(1, 33, (37,), generator=g)]
    per_step, batched = _metrics(), _metrics()
    updates = BatchedUpdates(max_steps=16)
    for logits, target in steps:
        per_step.update(logits, target)
        updates.add(batched, (logits.requires_grad_(), target))
    assert len(updates._pending) == 37 % 16  # 32 steps went in two updates, 5 wait
    updates.flush(batched)
    for name, value in per_step.compute().items():
        assert batched.compute()[name] == pytest.approx(float(value), abs=1e-6)
    big = BatchedUpdates(max_steps=16, max_elements=100)  # large inputs (masks) go at once
    big.add(_metrics(), (torch.randn(32, 5), torch.randint(0, 5, (32,))))
    assert big._pending == []


def test_running_loss_is_the_batch_weighted_mean_of_its_window_and_epoch():
    loss = RunningLoss()
    for value, n in ((1.0, 10), (2.0, 30)):
        loss.add(torch.tensor(value, requires_grad=True), n)
    assert float(loss.take_window()) == pytest.approx(1.75)
    loss.add(torch.tensor(4.0), 40)
    assert float(loss.take_window()) == pytest.approx(4.0)
    assert float(loss.take_epoch()) == pytest.approx((10 + 60 + 160) / 80)
    assert loss.take_epoch() is None


@pytest.mark.slow  # importing torch's compiler stack alone takes seconds
def test_compiling_keeps_the_network_s_parameter_names(tmp_path):
    from fishbear.engine.experiment import build_experiment
    from fishbear.engine.settings import TrainerSettings

    cfg = compose_train([*TINY, "trainer.compile=true"], tmp_path)
    _, task = build_experiment(cfg, TrainerSettings.from_config(cfg.trainer))
    names = list(task.state_dict())
    task.configure_model()  # compiling is lazy: nothing is compiled until the first call
    assert task.network._compiled_call_impl is not None
    assert list(task.state_dict()) == names


def test_decode_cache_returns_the_decoded_pixels_and_follows_edits(tmp_path):
    from PIL import Image

    path = tmp_path / "a.png"
    Image.fromarray(np.full((6, 7, 3), 10, np.uint8)).save(path)
    cache = DecodedImages(tmp_path / "cache")
    first = cache.load(path)
    assert np.array_equal(first, load_rgb(path)) and len(list((tmp_path / "cache").rglob("*.npy"))) == 1
    assert np.array_equal(cache.load(path), first)  # now from the array
    Image.fromarray(np.full((6, 7, 3), 200, np.uint8)).save(path)
    os.utime(path, ns=(1, 1))  # an edited file: its size or time differs, so it is decoded again
    assert int(cache.load(path)[0, 0, 0]) == 200


def test_the_training_loader_reads_through_the_decode_cache(tmp_path):
    from pathlib import Path

    from fishbear.engine.experiment import build_datamodule

    cfg = compose_train([*TINY, "data.decode_cache=true"], tmp_path / "run")
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    seen = sum(len(batch["image"]) for batch in datamodule.train_dataloader())
    next(iter(datamodule.val_dataloader()))
    cached = list((Path(cfg.data.cache_dir) / "decoded").rglob("*.npy"))
    train = len(datamodule.dataset("train"))
    assert seen <= train and len(cached) == train  # every training image, once; validation not cached


def test_a_cpu_run_loads_in_the_main_process_below_8_cores_and_gives_the_model_the_rest():
    from fishbear.core.runtime import available_cores
    from fishbear.engine.experiment import _cpu_plan

    assert [cpu_training_workers(c) for c in (1, 2, 4, 7, 8, 16, 64)] == [0, 0, 0, 0, 1, 2, 8]
    threads = torch.get_num_threads()
    try:
        workers = cpu_training_workers(available_cores())
        assert _cpu_plan(compose_train(["trainer.accelerator=cpu"])) == {"num_workers": workers}
        assert torch.get_num_threads() <= max(1, available_cores() - workers)
        assert _cpu_plan(compose_train(["trainer.accelerator=cpu", "data.num_workers=1"])) == {}  # given: kept
        assert torch.get_num_threads() <= max(1, available_cores() - 1)
    finally:
        torch.set_num_threads(threads)


def test_the_step_timer_counts_optimiser_steps_across_epochs(tmp_path):
    """benchmarks' StepTimer starts at the warm-up's global step once: a run longer than an
    epoch is timed over its steps (it restarted at batch ``warmup`` of every epoch, and the rate
    came out 2.7x too high)."""
    import sys

    import lightning as L

    from .conftest import REPO

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
