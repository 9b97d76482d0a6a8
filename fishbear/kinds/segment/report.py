"""Segmentation's report section: IoU per class from the pixel confusion matrix (void left out),
pixel accuracy, and test images with true and predicted masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fishbear.reports.intervals import weighted_mean
from fishbear.reports.metrics import pixel_confusion, segmentation_scores
from fishbear.reports.tables import fmt, sample_figure, table, worst


def section(results: dict[str, Any], classes: list[str], run_dir: Path, samples: list[Path],
            task: Any = None) -> dict[str, Any]:
    void = task.settings.void_index if task is not None else None
    matrix = pixel_confusion(results["prediction"], results["target"], len(classes), void)
    accuracy, iou, scored = segmentation_scores(matrix, void)
    pixels = matrix.sum(1)
    size = tuple(results["target"].shape[-2:])
    return {
        "pixel_accuracy": float(accuracy),
        "mean_iou": float(iou.nanmean()),
        "per_class": [{"class": classes[c], "iou": None if torch.isnan(v) else float(v), "pixels": int(pixels[c])}
                      for c, v in zip(scored, iou)],
        "void": None if void is None else classes[void],
        "top_losses": worst(results, samples),
        "figures": sample_figure(results, samples, task, size, run_dir, "segmentation_samples.png", k=6),
    }


def markdown(section: dict[str, Any], report: dict[str, Any]) -> list[str]:
    void = f" (void code '{section['void']}' left out)" if section.get("void") else ""
    lines = [f"## Segmentation{void}", "",
             table(["pixel accuracy", "mean IoU"], [[fmt(section["pixel_accuracy"]), fmt(section["mean_iou"])]]), "",
             "## IoU per class", "",
             table(["class", "IoU", "pixels (test)"],
                   [[r["class"], "-" if r["iou"] is None else fmt(r["iou"]), r["pixels"]] for r in section["per_class"]]), ""]
    if "segmentation_samples" in section.get("figures", {}):
        lines += ["![image with true mask, predicted mask](segmentation_samples.png)", ""]
    return lines


def metric_function(results: dict[str, Any], classes: list[str], task: Any = None) -> Any:
    """Pixel accuracy and mean IoU from the weighted sum of per-image confusion matrices, and the
    loss, for bootstrap weights per test image (fishbear.reports.intervals)."""
    void = task.settings.void_index if task is not None else None
    n = len(classes)
    per_image = np.stack([pixel_confusion(p, t, n, void).numpy() for p, t in
                          zip(results["prediction"], results["target"])]).reshape(len(results["target"]), -1)
    losses = results["loss"].numpy()

    def scores(weights: np.ndarray) -> dict[str, float]:
        matrix = torch.from_numpy((weights @ per_image).reshape(n, n))
        accuracy, iou, _ = segmentation_scores(matrix, void)
        return {"acc": float(accuracy), "miou": float(iou.nanmean()), "loss": weighted_mean(losses, weights)}

    return scores
