"""A killed run, stood in for by callbacks that raise while ``$FISHBEAR_TEST_KILL`` is set: the
resume tests of training, progressive resizing and the report name them as ``_target_``s."""

from __future__ import annotations

import os

import lightning as L
import pytest

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


class RecordIndices(L.Callback):
    """Appends each training batch's item indices to ``path``, a line a batch (what a run saw)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        with open(self.path, "a") as handle:
            handle.write(" ".join(str(int(i)) for i in batch["index"]) + "\n")
