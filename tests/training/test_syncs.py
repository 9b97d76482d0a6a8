"""A training step with no host-device sync beyond a plain loop's, proved on CPU: a dispatch mode
counts the operations that read a device's value back to the host (``.item()``, ``nonzero``, a
Python ``if`` on a tensor, ``equal``) and copies to the host, in the steps after a warm-up of the
real ``fishbear train`` configuration (default callbacks, TensorBoard logger, progress bar,
logging every step) and of a plain loop over the same network, optimiser and batches. On a GPU
each of these empties the queue (benchmarks/gpu.py counts the real ones there)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import lightning as L
import torch

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from sync_count import SyncCounter  # noqa: E402  (the benchmarks' counter: one definition)


class Window(L.Callback):
    """Arms the counter for steps ``first``..``last`` (the epoch's start and end stay outside)."""

    def __init__(self, counter: SyncCounter, first: int, last: int) -> None:
        self.counter, self.first, self.last = counter, first, last

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if batch_idx == self.first:
            self.counter.armed = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if batch_idx == self.last:
            self.counter.armed = False


def test_a_training_step_reads_nothing_back_beyond_a_plain_loop():
    import overhead

    from fishbear.engine.config import instantiate
    from fishbear.engine.experiment import build_trainer
    from fishbear.engine.settings import TrainerSettings

    steps, first, last = 24, 6, 21  # 16 counted steps, logging every step
    classes = ["a", "b", "c", "d"]
    data = overhead.InMemoryData(overhead.InMemory(steps * 8, 32, 4), 8)
    counted = {}
    with tempfile.TemporaryDirectory() as out:
        cfg = overhead.compose_cfg("convnet", steps, out, ["data.image_size=32", "data.batch_size=8",
                                                           "trainer.log_every_n_steps=1"])
        settings = TrainerSettings.from_config(cfg.trainer)
        torch.manual_seed(0)
        task = instantiate(cfg.task, "task", network=instantiate(cfg.model, "model", num_classes=4), classes=classes,
                           **settings.task_args())
        counter = SyncCounter()
        trainer = build_trainer(cfg, settings, Path(out), extra_callbacks=(Window(counter, first, last),))
        with counter:
            trainer.fit(task, datamodule=data)
        counted["fishbear"] = counter

        plain = SyncCounter()
        original = overhead._sync

        loader = data.train_dataloader

        def armed_loader():  # the plain loop's batches, armed for the same steps
            for i, batch in enumerate(loader()):
                plain.armed = first <= i <= last
                yield batch
            plain.armed = False

        data.train_dataloader = armed_loader
        try:
            with plain:
                overhead.run_plain(cfg, data, classes, warmup=2, steps=steps)
        finally:
            data.train_dataloader, overhead._sync = loader, original
        counted["plain"] = plain
    n = last - first + 1
    ours, theirs = counted["fishbear"].per_step(n), counted["plain"].per_step(n)
    extra = counted["fishbear"].count - counted["plain"].count
    assert ours <= theirs, f"fishbear {ours:.2f} a step, plain loop {theirs:.2f}; extra: {dict(extra)}"
    assert not [key for key in counted["fishbear"].count if key[0] in ("aten.nonzero.default", "aten.is_nonzero.default")]
