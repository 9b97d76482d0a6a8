"""Detection's report section: AP per class (at IoU 0.5 and over 0.5:0.95), the precision-recall
curve of each class at IoU 0.5, what was found and missed from the score threshold on, the
detector as an object-or-not image classifier, and the images with most errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fishbear.kinds.detect import DetectSettings
from fishbear.reports.metrics import box_map
from fishbear.reports.plots import pr_curve_figure, save_figure
from fishbear.reports.tables import (
    file_of,
    fmt,
    highest_losses,
    model_size,
    sample_figure,
    table,
)


def section(results: dict[str, Any], classes: list[str], run_dir: Path, samples: list[Path],
            task: Any = None) -> dict[str, Any]:
    metric = box_map(class_metrics=True, extended_summary=True)
    metric.update(results["prediction"], results["target"])
    summary = metric.compute()
    # precision: IoU thresholds x 101 recall points x classes x area ranges x max detections; -1 = no data
    precision = summary["precision"][:, :, :, 0, -1].numpy()
    present = [int(c) for c in summary["classes"].reshape(-1).tolist()]
    threshold = float((task.settings if task is not None else DetectSettings()).score_threshold)
    counts = results["counts"].sum(0).numpy()  # per class: found, false, missed (kept by the test step)
    per_class = []
    for c, name in enumerate(classes):
        k = present.index(c) if c in present else None
        ap50 = None if k is None else _mean_valid(precision[0, :, k])
        ap = None if k is None else _mean_valid(precision[:, :, k])
        tp, fp, fn = (int(v) for v in counts[c])
        per_class.append({"class": name, "ap_50": ap50, "ap": ap, "true_boxes": tp + fn, "found": tp,
                          "false_boxes": fp, "missed": fn,
                          "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None})
    figures: dict[str, str] = {}
    curves = {classes[c]: precision[0, :, present.index(c)] for c in range(len(classes)) if c in present}
    if curves:
        save_figure(pr_curve_figure(curves, "Precision-recall at IoU 0.5 (test)"), str(run_dir / "pr_curve.png"))
        figures["pr_curve"] = "pr_curve.png"
    found = np.array([bool((p["scores"] >= threshold).any()) for p in results["prediction"]])
    truth = np.array([len(t["boxes"]) > 0 for t in results["target"]])
    # images with true or found boxes first: most test frames of a video trap are empty water
    order = np.argsort(~(found | truth), kind="stable").tolist()
    figures.update(sample_figure(results, samples, task, model_size(task), run_dir, "detection_samples.png",
                                 order=order))
    return {
        "map": float(summary["map"]), "map_50": float(summary["map_50"]), "map_75": float(summary["map_75"]),
        "score_threshold": threshold,
        "per_class": per_class,
        "images_without_boxes": int((~truth).sum()),
        "presence": _presence(found, truth),
        "worst": [{"file": file_of(samples, results["index"][i]), "errors": int(results["loss"][i])}
                  for i in highest_losses(results, 9) if results["loss"][i] > 0],
        "figures": figures,
    }


def _presence(found: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """The detector as an image classifier: does an image hold an object (``found``: a box from
    the score threshold on) or not; what sorting video frames into fish / no_fish by it would score."""
    return {"accuracy": float((found == truth).mean()) if len(truth) else None,
            "with_objects_found": int((found & truth).sum()), "with_objects_missed": int((~found & truth).sum()),
            "empty_flagged": int((found & ~truth).sum()), "empty_passed": int((~found & ~truth).sum())}


def _mean_valid(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


def markdown(section: dict[str, Any], report: dict[str, Any]) -> list[str]:
    cut = section["score_threshold"]
    lines = ["## Boxes", "",
             table(["mAP@[.5:.95]", "mAP@0.5", "mAP@0.75", "test images without boxes"],
                   [[fmt(section["map"]), fmt(section["map_50"]), fmt(section["map_75"]),
                     section["images_without_boxes"]]]), "",
             f"## Per class (found, false and missed boxes from score {cut} on, at IoU 0.5)", "",
             table(["class", "AP@0.5", "AP@[.5:.95]", "true boxes", "found", "false", "missed", "precision", "recall"],
                   [[r["class"], fmt(r["ap_50"]), fmt(r["ap"]), r["true_boxes"], r["found"], r["false_boxes"],
                     r["missed"], fmt(r["precision"]), fmt(r["recall"])] for r in section["per_class"]]), ""]
    presence = section.get("presence")
    if presence and presence["accuracy"] is not None:
        lines += [f"## Object or not, per image (a box from score {cut} on)", "",
                  table(["accuracy", "with objects: found", "missed", "empty: flagged", "passed"],
                        [[fmt(presence["accuracy"]), presence["with_objects_found"], presence["with_objects_missed"],
                          presence["empty_flagged"], presence["empty_passed"]]]), ""]
    if section["worst"]:
        lines += ["## Images with most errors (false + missed boxes)", "",
                  table(["file", "errors"], [[f"`{Path(r['file']).name}`", r["errors"]] for r in section["worst"]]), ""]
    figures = section.get("figures", {})
    if "pr_curve" in figures:
        lines += ["![precision-recall curves](pr_curve.png)", ""]
    if "detection_samples" in figures:
        lines += ["![true (green) and predicted (red) boxes](detection_samples.png)", ""]
    return lines


def metric_function(results: dict[str, Any], classes: list[str], task: Any = None) -> Any:
    """COCO mAP figures of the test images counted as often as their bootstrap weight (an image
    drawn twice adds its boxes twice): torchmetrics' evaluation itself, so slower than the other
    kinds' sums; ``fishbear.reports.intervals`` draws fewer resamples for it (``Kind.resamples``)."""
    from fishbear.reports.metrics import BoxMAP

    predictions, targets = results["prediction"], results["target"]

    def scores(weights: np.ndarray) -> dict[str, float]:
        metric = BoxMAP()
        chosen = [i for i, k in enumerate(weights.astype(int)) for _ in range(k)]
        metric.update([predictions[i] for i in chosen], [targets[i] for i in chosen])
        return {name: float(value) for name, value in metric.compute().items()}

    return scores
