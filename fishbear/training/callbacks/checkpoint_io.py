"""Checkpoints written to a temporary file and renamed: a run killed while saving keeps the
previous ``last.ckpt`` whole, so it can always be resumed."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from fishbear.core.atomic import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        atomic_torch_save(path, checkpoint)
