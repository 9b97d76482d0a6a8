"""Point regression's LightningModule (BIWI head centres): K named points per image, two outputs each.

Targets are in [-1, 1] of the transformed image (so augmentation moves them), the loss is MSE or
smooth L1 on those, and the metric is the mean distance in pixels of the original images, the
figure a user can picture ("the head centre is off by 9 px").
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection

from fishbear.core.errors import ConfigError
from fishbear.kinds.base import Kind
from fishbear.kinds.base_task import BaseTask
from fishbear.kinds.points import KIND, points_to_pixels
from fishbear.reports.metrics import MeanPixelDistance
from fishbear.reports.plots import image_grid

LOSSES = ("mse", "smooth_l1")


class PointsTask(BaseTask):
    kind: ClassVar[Kind] = KIND

    def __init__(self, *args: Any, loss: str = "mse", **kwargs: Any) -> None:
        if loss not in LOSSES:
            raise ConfigError(f"task.loss={loss!r} is not known; use one of {', '.join(LOSSES)}")
        self.loss_name = loss
        super().__init__(*args, **kwargs)

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"dist_px": MeanPixelDistance()})

    def compute_loss(self, outputs: torch.Tensor, batch: dict[str, Any], reduction: str = "mean") -> torch.Tensor:
        fn = F.mse_loss if self.loss_name == "mse" else F.smooth_l1_loss
        losses = fn(outputs.float(), batch["target"], reduction="none").mean(1)
        return losses.mean() if reduction == "mean" else losses

    def metric_inputs(self, outputs: torch.Tensor, batch: dict[str, Any]) -> tuple[Any, ...]:
        return outputs, batch["target"], batch["size"]

    def draw(self, images: np.ndarray, targets: torch.Tensor, predictions: torch.Tensor | None = None,
             sizes: torch.Tensor | None = None) -> Any:
        """True points as green dots, predicted ones as red crosses, on the images as shown."""
        height, width = images.shape[1:3]
        marks = []
        for i in range(len(images)):
            pairs = [(points_to_pixels(targets[i : i + 1].cpu().numpy(), width, height)[0], "lime")]
            if predictions is not None:
                pairs.append((points_to_pixels(predictions[i : i + 1].cpu().numpy(), width, height)[0], "red"))
            marks.append(pairs)
        titles = ["true (green)" + (" / predicted (red)" if predictions is not None else "")] * len(images)
        return image_grid(images, titles, columns=4, size=2.2, points=marks)


TASK = PointsTask
