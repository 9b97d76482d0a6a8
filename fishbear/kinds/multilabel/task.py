"""Multi-label classification's LightningModule (Planet tiles): independent tags, a sigmoid per tag.

Scored as the competition was: tags above a threshold (0.2, fastai's ``accuracy_thresh``
default), accuracy over all tag decisions and the sample-averaged F2. After fitting, one
threshold per tag is tuned on the validation split (coordinate ascent on the sample F-beta) on
the best weights, and the engine writes them into the best checkpoint's settings; the test
reports F-beta at the global and at the tuned thresholds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MultilabelAccuracy

from fishbear.kinds.base import Kind
from fishbear.kinds.base_task import BaseTask
from fishbear.kinds.meta import KindSettings
from fishbear.kinds.multilabel import KIND, MultiLabelSettings
from fishbear.reports.metrics import SampleFBeta, sample_fbeta


def tune_thresholds(probabilities: torch.Tensor, targets: torch.Tensor, start: float, beta: float = 2.0,
                    candidates: np.ndarray | None = None, sweeps: int = 2) -> torch.Tensor:
    """Per-tag thresholds maximising the mean sample F-beta, one tag at a time with the others
    held (two sweeps settle it). A tag never seen in validation keeps ``start``."""
    grid = torch.as_tensor(np.arange(0.02, 0.99, 0.02) if candidates is None else candidates, dtype=torch.float32)
    truth = targets > 0.5
    thresholds = torch.full((probabilities.shape[1],), float(start))
    best = sample_fbeta(probabilities > thresholds, truth, beta).mean()
    for _ in range(sweeps):
        for tag in range(probabilities.shape[1]):
            if not truth[:, tag].any():
                continue
            for value in grid:
                trial = thresholds.clone()
                trial[tag] = value
                score = sample_fbeta(probabilities > trial, truth, beta).mean()
                if score > best + 1e-9:
                    best, thresholds = score, trial
    return thresholds


class MultiLabelTask(BaseTask):
    kind: ClassVar[Kind] = KIND
    tunes_after_fit: ClassVar[bool] = True

    def __init__(self, *args: Any, threshold: float = MultiLabelSettings.threshold,
                 beta: float = MultiLabelSettings.beta, tune_thresholds: bool = True, **kwargs: Any) -> None:
        self.threshold, self.beta, self.tune = float(threshold), float(beta), bool(tune_thresholds)
        super().__init__(*args, **kwargs)
        # the checkpoint's tuned thresholds (evaluating one) stay; threshold and beta are this task's
        self.settings = dataclasses.replace(self.settings, threshold=self.threshold, beta=self.beta)

    def make_metrics(self) -> MetricCollection:
        n = len(self.classes)
        return MetricCollection({
            "acc": MultilabelAccuracy(num_labels=n, threshold=self.threshold, average="micro", validate_args=False),
            "fbeta": SampleFBeta(self.beta, self.threshold),
        })

    def compute_loss(self, outputs: torch.Tensor, batch: dict[str, Any], reduction: str = "mean") -> torch.Tensor:
        losses = F.binary_cross_entropy_with_logits(outputs.float(), batch["target"], reduction="none").mean(1)
        return losses.mean() if reduction == "mean" else losses

    def metric_inputs(self, outputs: torch.Tensor, batch: dict[str, Any]) -> tuple[Any, ...]:
        return outputs.float().sigmoid(), batch["target"].int()

    def _tags(self, row: torch.Tensor, cut: torch.Tensor | float) -> list[str]:
        return [self.classes[i] for i in torch.nonzero(row > cut).flatten().tolist()]

    def _caption(self, target: torch.Tensor, prediction: torch.Tensor | None) -> str:
        actual = " ".join(self._tags(target, 0.5)) or "(none)"
        if prediction is None:
            return actual
        cuts = torch.as_tensor(self.settings.cuts(len(self.classes)), dtype=torch.float32)
        return f"{' '.join(self._tags(prediction.cpu(), cuts)) or '(none)'}\n/ {actual}"

    # -- thresholds ----------------------------------------------------------------------------
    @torch.inference_mode()
    def collect(self, loader: Any, datamodule: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities and targets over a loader of ``datamodule``'s, in eval mode."""
        was_training = self.training
        self.eval()
        probabilities, targets = [], []
        for batch in loader:
            images = self._images(datamodule.to_model(batch, self.device))
            probabilities.append(self.kind.predictions(self(images)).cpu())
            targets.append(batch["target"])
        self.train(was_training)
        return torch.cat(probabilities), torch.cat(targets)

    def after_fit(self, trainer: L.Trainer, datamodule: Any) -> bool:
        """Tune per-tag thresholds on validation for the weights that will be tested (the engine
        has loaded the best checkpoint's); True: the best checkpoint must carry them."""
        if not self.tune or not trainer.is_global_zero:
            return False
        probabilities, targets = self.collect(datamodule.val_dataloader(), datamodule)
        tuned = tune_thresholds(probabilities, targets, self.threshold, self.beta)
        self.settings = dataclasses.replace(self.settings, thresholds=tuple(float(v) for v in tuned))
        return True

    def restore_settings(self, loaded: KindSettings) -> None:
        self.settings = dataclasses.replace(self.settings, thresholds=loaded.thresholds)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        for old in ("thresholds", "thresholds_tuned"):  # buffers of checkpoints written before the settings
            checkpoint.get("state_dict", {}).pop(old, None)

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.test_results and self.settings.thresholds:
            truth = self.test_results["target"] > 0.5
            cuts = torch.tensor(self.settings.thresholds, dtype=torch.float32)
            tuned = sample_fbeta(self.test_results["prediction"] > cuts, truth, self.beta).mean()
            self.log("test/fbeta_tuned", tuned)


TASK = MultiLabelTask
