"""Multi-label's report section: the sample F-beta and per-tag precision and recall at the global
threshold and at the tuned ones, side by side, and test images with predicted and true tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import classification_report

from fishbear.kinds.multilabel import MultiLabelSettings
from fishbear.reports.intervals import weighted_mean
from fishbear.reports.metrics import sample_fbeta
from fishbear.reports.tables import fmt, model_size, sample_figure, table, worst


def _settings(task: Any) -> MultiLabelSettings:
    return task.settings if task is not None else MultiLabelSettings()


def section(results: dict[str, Any], classes: list[str], run_dir: Path, samples: list[Path],
            task: Any = None) -> dict[str, Any]:
    probabilities, truth = results["prediction"], results["target"] > 0.5
    settings = _settings(task)
    beta = settings.beta
    cuts = {"global": torch.full((len(classes),), float(settings.threshold))}
    if settings.thresholds:
        cuts["tuned"] = torch.tensor(settings.thresholds, dtype=torch.float32)
    out: dict[str, Any] = {"beta": beta, "thresholds": {name: [float(v) for v in cut] for name, cut in cuts.items()}}
    for name, cut in cuts.items():
        predicted = probabilities > cut
        report = classification_report(truth.numpy(), predicted.numpy(), target_names=classes, output_dict=True,
                                       zero_division=0)
        out[name] = {"fbeta": float(sample_fbeta(predicted, truth, beta).mean()),
                     "accuracy": float((predicted == truth).float().mean()), "per_tag": report}
    out["top_losses"] = worst(results, samples)
    out["figures"] = sample_figure(results, samples, task, model_size(task), run_dir, "tag_samples.png")
    return out


def markdown(section: dict[str, Any], report: dict[str, Any]) -> list[str]:
    names = [n for n in ("global", "tuned") if n in section]
    lines = [f"## F{section['beta']:g} (sample-averaged) at the global and the tuned thresholds", "",
             table(["thresholds", f"F{section['beta']:g}", "accuracy"],
                   [[n, fmt(section[n]["fbeta"]), fmt(section[n]["accuracy"])] for n in names]), ""]
    header = ["tag", "support"]
    for n in names:
        header += [f"threshold ({n})", f"precision ({n})", f"recall ({n})"]
    rows = []
    for i, tag in enumerate(report["classes"]):
        row: list[Any] = [tag, int(section[names[0]]["per_tag"][tag]["support"])]
        for n in names:
            entry = section[n]["per_tag"][tag]
            row += [f"{section['thresholds'][n][i]:.2f}", fmt(entry["precision"]), fmt(entry["recall"])]
        rows.append(row)
    lines += ["## Per tag", "", table(header, rows), ""]
    if "tag_samples" in section.get("figures", {}):
        lines += ["![test images: predicted / true tags](tag_samples.png)", ""]
    return lines


def metric_function(results: dict[str, Any], classes: list[str], task: Any = None) -> Any:
    """Tag accuracy and sample F-beta at the global threshold (and at the tuned ones), and the
    loss, for bootstrap weights per test image (fishbear.reports.intervals)."""
    probabilities, truth = results["prediction"], results["target"] > 0.5
    settings = _settings(task)
    beta, cut = settings.beta, float(settings.threshold)
    right = ((probabilities > cut) == truth).float().numpy()
    fbeta = sample_fbeta(probabilities > cut, truth, beta).numpy()
    tuned = None
    if settings.thresholds:
        tuned = sample_fbeta(probabilities > torch.tensor(settings.thresholds, dtype=torch.float32), truth, beta).numpy()
    losses = results["loss"].numpy()

    def scores(weights: np.ndarray) -> dict[str, float]:
        out = {"acc": weighted_mean(right, weights), "fbeta": weighted_mean(fbeta, weights),
               "loss": weighted_mean(losses, weights)}
        if tuned is not None:
            out["fbeta_tuned"] = weighted_mean(tuned, weights)
        return out

    return scores
