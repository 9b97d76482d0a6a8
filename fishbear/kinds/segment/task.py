"""Semantic segmentation's LightningModule (CamVid): a class per pixel, ``void`` left out of everything.

Loss is pixel-wise cross-entropy with ``ignore_index`` at the void code; metrics are pixel
accuracy without void (fastai's ``acc_camvid``) and mean IoU over the classes that occur, both
read from one confusion matrix. The test stage keeps class-index masks, not scores.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection

from fishbear.kinds.base import Kind
from fishbear.kinds.base_task import BaseTask
from fishbear.kinds.segment import KIND
from fishbear.reports.metrics import SegmentationScores
from fishbear.reports.plots import image_grid, overlay_mask, palette


class SegmentationTask(BaseTask):
    kind: ClassVar[Kind] = KIND

    def __init__(self, *args: Any, void: str | None = None, **kwargs: Any) -> None:
        """``void``: the class name (a line of ``codes.txt``) whose pixels are not scored; it must
        be set before the metrics are made, so it is read from ``classes`` first."""
        classes = kwargs.get("classes", args[1] if len(args) > 1 else [])
        self.void_name = void
        self.void_index = list(classes).index(void) if void in list(classes) else None
        super().__init__(*args, **kwargs)
        if void is not None and self.void_index is None:
            from fishbear.core.errors import ConfigError

            raise ConfigError(f"task.void={void!r} is not one of the codes {self.classes}; set it to the "
                              "name of the unlabelled code, or task.void=null when there is none.")
        self.settings = dataclasses.replace(self.settings, void_index=self.void_index)

    @property
    def ignore_index(self) -> int:
        return -100 if self.void_index is None else self.void_index

    def make_metrics(self) -> MetricCollection:
        n = len(self.classes)
        return MetricCollection({
            "acc": SegmentationScores(n, self.void_index, "acc"),
            "miou": SegmentationScores(n, self.void_index, "miou"),
        })

    def compute_loss(self, outputs: torch.Tensor, batch: dict[str, Any], reduction: str = "mean") -> torch.Tensor:
        target = batch["target"]
        target = target.masked_fill(target == -100, self.ignore_index)  # letterbox pixels (data.resize=pad)
        return F.cross_entropy(outputs.float(), target, ignore_index=self.ignore_index, reduction=reduction)

    def sample_losses(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Mean over each image's scored pixels (void pixels neither add nor count)."""
        losses = self.compute_loss(outputs, batch, reduction="none").flatten(1)
        scored = (batch["target"] != self.ignore_index).flatten(1).sum(1).clamp(min=1)
        return losses.sum(1) / scored

    def metric_inputs(self, outputs: torch.Tensor, batch: dict[str, Any]) -> tuple[Any, ...]:
        return outputs, batch["target"]

    def draw(self, images: np.ndarray, targets: torch.Tensor, predictions: torch.Tensor | None = None,
             sizes: torch.Tensor | None = None) -> Any:
        """Each image with its true mask overlaid and, when given, the predicted mask beside it."""
        colours = palette(len(self.classes), self.void_index)
        shown, titles = [], []
        for i, image in enumerate(images):
            shown.append(overlay_mask(image, targets[i].cpu().numpy(), colours, void_index=self.void_index))
            titles.append("true mask")
            if predictions is not None:
                mask = predictions[i]
                mask = mask.argmax(0) if mask.ndim == 3 else mask
                shown.append(overlay_mask(image, mask.cpu().numpy(), colours))
                titles.append("predicted")
        return image_grid(np.stack(shown), titles, columns=4 if predictions is not None else 8, size=2.2)


TASK = SegmentationTask
