"""Object detection's LightningModule: the detector's own losses, COCO mAP on validation and test.

Faster R-CNN computes its four losses itself (RPN objectness and box regression, the box head's
classification and regression) in training mode, and returns scored boxes in eval mode; the task
logs the losses and scores the boxes with torchmetrics' MeanAveragePrecision. The best checkpoint
is the one with the highest validation mAP@0.5: a detector has no validation loss without
sampling proposals against the truth, and mAP is what the user is after.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
from torchmetrics import MetricCollection

from fishbear.core.tensors import to_cpu
from fishbear.kinds.base import Kind
from fishbear.kinds.base_task import BaseTask, RunningLoss
from fishbear.kinds.detect import KIND, DetectSettings
from fishbear.reports.metrics import BoxMAP, match_boxes
from fishbear.reports.plots import image_grid

Boxes = list[dict[str, torch.Tensor]]


class DetectionTask(BaseTask):
    kind: ClassVar[Kind] = KIND

    def __init__(self, *args: Any, score_threshold: float = DetectSettings.score_threshold, **kwargs: Any) -> None:
        """``score_threshold``: the score from which a box counts as found (``DetectSettings``)."""
        self.score_threshold = float(score_threshold)
        super().__init__(*args, **kwargs)
        self.settings = dataclasses.replace(self.settings, score_threshold=self.score_threshold)
        self._parts: dict[str, RunningLoss] = {}  # the detector's four losses, summed on the device

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"map": BoxMAP()})

    # -- steps ---------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.network(self._images(batch), batch["target"])
        loss = sum(losses.values())
        size = len(batch["image"])
        self._losses["train"].add(loss, size)
        for name, value in losses.items():
            self._parts.setdefault(name, RunningLoss()).add(value, size)
        if self._train_loss_due():
            self._log_training_loss()
        return loss

    def on_train_epoch_end(self) -> None:
        for name, part in self._parts.items():
            mean = part.take_epoch()
            if mean is not None:
                self.log(f"train/{name}", float(mean))
        super().on_train_epoch_end()

    def _evaluate(self, batch: dict[str, Any], stage: str) -> Boxes:
        predictions = self(self._images(batch))
        getattr(self, f"{stage}_metrics").update(predictions, batch["target"])
        return predictions

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        predictions = to_cpu(self._evaluate(batch, "test"))
        targets = to_cpu(batch["target"])
        # per image and class: boxes found, false and missed from the score threshold on (the report sums them)
        counts = torch.stack([match_boxes(p, t, len(self.classes), score=self.score_threshold)
                              for p, t in zip(predictions, targets)])
        self._test_records.append({"index": batch["index"].detach().cpu(), "loss": counts[:, :, 1:].sum((1, 2)).float(),
                                   "counts": counts, "prediction": predictions, "target": targets,
                                   "size": batch["size"].detach().cpu()})

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> Boxes:
        return self.kind.kept_predictions(self(self._images(batch)))

    # -- pictures and reading ------------------------------------------------------------------
    def draw(self, images: np.ndarray, targets: Boxes, predictions: Boxes | None = None,
             sizes: torch.Tensor | None = None) -> Any:
        """True boxes in green, predicted ones from the score threshold on in red with their score."""
        marks, titles = [], []
        for i in range(len(images)):
            truth = targets[i]
            sets = [(truth["boxes"].numpy(), "lime", [""] * len(truth["boxes"]))]
            title = f"{len(truth['boxes'])} true"
            if predictions is not None:
                found = predictions[i]
                keep = found["scores"] >= self.score_threshold
                captions = [f"{self._name(c)} {s:.2f}" for c, s in zip(found["labels"][keep].tolist(),
                                                                        found["scores"][keep].tolist())]
                sets.append((found["boxes"][keep].numpy(), "red", captions))
                title += f" / {int(keep.sum())} found"
            else:
                sets[0] = (truth["boxes"].numpy(), "lime", [self._name(c) for c in truth["labels"].tolist()])
            marks.append(sets)
            titles.append(title)
        return image_grid(images, titles, columns=4, size=2.6, boxes=marks)

    def _name(self, index: int) -> str:
        return self.classes[index] if 0 <= index < len(self.classes) else str(index)


TASK = DetectionTask
