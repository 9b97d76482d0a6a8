"""Show the first training batch as the model sees it: augmented, resized, labelled.

Most data bugs (wrong labels, wrong normalisation, crops that cut the object away) are visible in
one picture of a batch; it goes to ``<run>/train_batch.png`` and to TensorBoard's IMAGES tab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from fishbear.data.transforms import denormalize
from fishbear.plots import image_grid, save_figure


def _label(target: Any, classes: list[str]) -> str:
    if isinstance(target, torch.Tensor) and target.ndim == 0:
        target = int(target)
    if isinstance(target, int) and 0 <= target < len(classes):
        return classes[target]
    return str(target)


class BatchGrid(L.Callback):
    def __init__(self, max_images: int = 16, filename: str = "train_batch.png") -> None:
        self.max_images = max_images
        self.filename = filename
        self._done = False

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._done or not trainer.is_global_zero:
            return
        self._done = True
        datamodule = trainer.datamodule
        images = batch["image"][: self.max_images].detach().float().cpu()
        images = denormalize(images, datamodule.mean, datamodule.std).permute(0, 2, 3, 1).numpy()
        classes = getattr(pl_module, "classes", [])
        titles = [_label(t, classes) for t in batch["target"][: self.max_images]]
        fig = image_grid(images, titles)
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_figure"):
                experiment.add_figure("train/batch", fig, global_step=trainer.global_step, close=False)
        if trainer.default_root_dir:
            save_figure(fig, str(Path(trainer.default_root_dir) / self.filename))
