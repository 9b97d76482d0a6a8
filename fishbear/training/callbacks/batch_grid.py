"""Pictures of batches as the model sees them: the first training batch, and validation samples
with their predictions every epoch.

Most data bugs (wrong labels, masks that do not line up, points that did not follow a flip,
crops that cut the object away) are visible in one picture of a batch; the task draws it (labels,
tags, mask overlays or points), so every kind gets the same pictures. They go to the run folder
and to TensorBoard's IMAGES tab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from fishbear.core.tensors import to_cpu
from fishbear.reports.plots import save_figure


def _shown(batch: dict[str, Any], datamodule: Any, k: int) -> Any:
    """The first ``k`` pictures of a batch as the network saw them (its normalisation undone)."""
    images = batch["image"][:k].detach().float().cpu()
    return datamodule.feed.normalize().undo(images).permute(0, 2, 3, 1).numpy()


def _publish(trainer: L.Trainer, figure: Any, tag: str, filename: str | None) -> None:
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_figure"):
            experiment.add_figure(tag, figure, global_step=trainer.global_step, close=False)
    if filename and trainer.default_root_dir:
        save_figure(figure, str(Path(trainer.default_root_dir) / filename))
    else:
        import matplotlib.pyplot as plt

        plt.close(figure)


class BatchGrid(L.Callback):
    """The first training batch (``train_batch.png``) and, with ``val_images`` > 0, the first
    validation images with predictions at the end of every validation (TensorBoard ``val/samples``,
    the last one kept as ``val_samples.png``)."""

    def __init__(self, max_images: int = 16, filename: str = "train_batch.png", val_images: int = 8) -> None:
        self.max_images = max_images
        self.filename = filename
        self.val_images = int(val_images)
        self._done = False
        self._val_batch: dict[str, Any] | None = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._done or not trainer.is_global_zero:
            return
        self._done = True
        k = self.max_images
        figure = pl_module.draw(_shown(batch, trainer.datamodule, k), to_cpu(batch["target"][:k]), None,
                                to_cpu(batch["size"][:k]))
        _publish(trainer, figure, "train/batch", self.filename)

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx == 0 and self.val_images > 0 and not trainer.sanity_checking and trainer.is_global_zero:
            self._val_batch = {key: batch[key][: self.val_images] for key in ("image", "target", "size")}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_batch is None:
            return
        batch, self._val_batch = self._val_batch, None
        to_tensorboard = any(hasattr(getattr(lg, "experiment", None), "add_figure") for lg in trainer.loggers)
        if not to_tensorboard and trainer.current_epoch < trainer.max_epochs - 1:
            return  # a figure is slow to draw: without TensorBoard only the last one is kept
        with torch.no_grad():
            predictions = to_cpu(pl_module.kind.predictions(pl_module(pl_module._images(batch))))
        figure = pl_module.draw(_shown(batch, trainer.datamodule, self.val_images), to_cpu(batch["target"]),
                                predictions, to_cpu(batch["size"]))
        _publish(trainer, figure, "val/samples", "val_samples.png")
