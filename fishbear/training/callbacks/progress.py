"""The progress bar, fed without reading the device back.

Lightning's bar shows what ``self.log`` was given, and Lightning keeps a value logged in a step as
a tensor on the model's device, converted to a number at the end of every later step (for the
bar, the callbacks, the loggers): one host-device sync a step, for as long as the epoch runs. So
the training loss is never given to ``self.log`` step by step: the task sends each window of it to
the host behind the queued work (``BaseTask._log_training_loss``), hands it to the loggers itself,
and this bar shows the latest that has arrived.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class ProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, plus the task's latest training loss (a Python number) as ``loss``."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        loss = getattr(pl_module, "_shown_loss", None)
        if loss is not None:
            items["train/loss_step"] = f"{loss:.4g}"
        return items
