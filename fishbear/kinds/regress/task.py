"""Image regression's LightningModule: MSE (or smooth L1) on standardised values, or the Poisson
negative log-likelihood on log-rates for counts; MAE, RMSE and R² in the values' own units."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from fishbear.core.errors import ConfigError
from fishbear.kinds.base import Kind
from fishbear.kinds.base_task import BaseTask
from fishbear.kinds.regress import KIND, values
from fishbear.reports.plots import image_grid

LOSSES = ("mse", "smooth_l1", "poisson")


class RegressionTask(BaseTask):
    kind: ClassVar[Kind] = KIND

    def __init__(self, *args: Any, loss: str = "mse", **kwargs: Any) -> None:
        """``loss``: ``mse`` or ``smooth_l1`` on values standardised by the training split, or
        ``poisson`` (counts: the network predicts the log of the expected count)."""
        if loss not in LOSSES:
            raise ConfigError(f"task.loss={loss!r} is not known; use one of {', '.join(LOSSES)}")
        super().__init__(*args, **kwargs)
        self.loss_name = loss
        self.settings = dataclasses.replace(self.settings, regress_loss=loss)
        n = len(self.classes)  # the training split's scale (built without data, a test: the values as they come)
        mean, std = self.settings.value_mean or (0.0,) * n, self.settings.value_std or (1.0,) * n
        self.register_buffer("value_mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("value_std", torch.tensor(std, dtype=torch.float32), persistent=False)

    def make_metrics(self) -> MetricCollection:
        n = len(self.classes)
        return MetricCollection({
            "mae": MeanAbsoluteError(),
            "rmse": MeanSquaredError(squared=False),
            "r2": R2Score(multioutput="uniform_average") if n == 1 else R2Score(num_outputs=n),
        })

    def compute_loss(self, outputs: torch.Tensor, batch: dict[str, Any], reduction: str = "mean") -> torch.Tensor:
        outputs = outputs.float().reshape(len(outputs), -1)
        target = batch["target"].float()
        if self.loss_name == "poisson":
            losses = F.poisson_nll_loss(outputs, target, log_input=True, full=False, reduction="none")
        else:
            fn = F.mse_loss if self.loss_name == "mse" else F.smooth_l1_loss
            losses = fn(outputs, (target - self.value_mean) / self.value_std, reduction="none")
        losses = losses.mean(1)
        return losses.mean() if reduction == "mean" else losses

    def metric_inputs(self, outputs: torch.Tensor, batch: dict[str, Any]) -> tuple[Any, ...]:
        predicted, target = values(outputs, self.settings), batch["target"].float()
        if predicted.shape[1] == 1:  # one value: the metrics take flat vectors
            return predicted.reshape(-1), target.reshape(-1)
        return predicted, target

    def _caption(self, target: torch.Tensor, prediction: torch.Tensor | None) -> str:
        actual = " ".join(f"{v:.3g}" for v in target.reshape(-1).tolist())
        if prediction is None:
            return actual
        shown = values(prediction.reshape(1, -1), self.settings)[0]
        return f"{' '.join(f'{v:.3g}' for v in shown.tolist())} / {actual}"

    def draw(self, images: np.ndarray, targets: torch.Tensor, predictions: torch.Tensor | None = None,
             sizes: torch.Tensor | None = None) -> Any:
        titles = [self._caption(t, None if predictions is None else p)
                  for t, p in zip(targets, predictions if predictions is not None else [None] * len(targets))]
        names = ", ".join(self.classes)
        return image_grid(images, titles,
                          title=f"{names}: " + ("predicted / true" if predictions is not None else "true"))


TASK = RegressionTask
