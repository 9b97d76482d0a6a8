"""Single-label classification's LightningModule: cross-entropy, accuracy and macro F1, and the
validation confusion matrix in TensorBoard every epoch."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from fishbear.core.errors import ConfigError
from fishbear.kinds.base import Kind
from fishbear.kinds.base_task import BaseTask
from fishbear.kinds.classify import KIND
from fishbear.training.sync_free import BatchedUpdates


class ClassificationTask(BaseTask):
    kind: ClassVar[Kind] = KIND

    def __init__(self, *args: Any, label_smoothing: float = 0.0, class_weights: str | None = None,
                 **kwargs: Any) -> None:
        """``class_weights``: ``balanced`` weighs each class's training loss by the inverse of its
        share of the training images (52 fish frames against 116 empty ones: a model that calls
        everything empty is no longer nearly optimal); None: every image counts the same."""
        self.label_smoothing = float(label_smoothing)
        if class_weights not in (None, "balanced"):
            raise ConfigError(f"task.class_weights={class_weights!r}: use balanced or null")
        self.class_weights = class_weights
        super().__init__(*args, **kwargs)
        self._loss_weights: torch.Tensor | None = None
        # kept apart from the scalar metrics: a matrix is drawn, not logged as a number
        self.val_confusion = MulticlassConfusionMatrix(num_classes=len(self.classes), validate_args=False)
        self._confusion_updates = BatchedUpdates()

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.class_weights == "balanced":
            counts = self.trainer.datamodule.counts()["train"]
            images = torch.tensor([float(counts.get(name, 0)) for name in self.classes])
            self._loss_weights = (images.sum() / (len(images) * images.clamp(min=1))).to(self.device)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        _, outputs = self._step(batch, "val")
        self._confusion_updates.add(self.val_confusion, (outputs, batch["target"]))  # gathered on the device

    def on_validation_epoch_end(self) -> None:
        """The validation confusion matrix as a TensorBoard figure, one per epoch."""
        super().on_validation_epoch_end()
        self._confusion_updates.flush(self.val_confusion)
        matrix = self.val_confusion.compute().cpu().numpy()
        self.val_confusion.reset()
        experiment = getattr(self.logger, "experiment", None)
        if self.trainer.sanity_checking or not hasattr(experiment, "add_figure"):
            return
        from fishbear.reports.plots import confusion_matrix_figure

        experiment.add_figure("val/confusion_matrix", confusion_matrix_figure(matrix, self.classes),
                              global_step=self.global_step)

    def make_metrics(self) -> MetricCollection:
        n = len(self.classes)
        return MetricCollection({
            # targets come from our own readers; skipping torchmetrics' per-call checks saves
            # a device sync per step
            "acc": MulticlassAccuracy(num_classes=n, average="micro", validate_args=False),
            "f1": MulticlassF1Score(num_classes=n, average="macro", validate_args=False),
        })

    def compute_loss(self, outputs: torch.Tensor, batch: dict[str, Any], reduction: str = "mean") -> torch.Tensor:
        # weighted in training only: validation and test losses stay comparable across settings
        weight = self._loss_weights if self.training else None
        return F.cross_entropy(outputs.float(), batch["target"], weight=weight, label_smoothing=self.label_smoothing,
                               reduction=reduction)

    def metric_inputs(self, outputs: torch.Tensor, batch: dict[str, Any]) -> tuple[Any, Any]:
        return outputs, batch["target"]

    def _caption(self, target: torch.Tensor, prediction: torch.Tensor | None) -> str:
        actual = self.classes[int(target)]
        return actual if prediction is None else f"{self.classes[int(prediction.argmax())]}/{actual}"


TASK = ClassificationTask
