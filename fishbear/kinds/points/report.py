"""Point regression's report section: distances in pixels of the original images, per point, the
worst images named, and test images with true and predicted points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fishbear.reports.intervals import weighted_mean
from fishbear.reports.metrics import pixel_distances
from fishbear.reports.tables import file_of, fmt, model_size, sample_figure, table


def section(results: dict[str, Any], classes: list[str], run_dir: Path, samples: list[Path],
            task: Any = None) -> dict[str, Any]:
    distances = pixel_distances(results["prediction"], results["target"].float(), results["size"]).numpy()
    per_image = distances.mean(1)
    worst = per_image.argsort()[::-1][:9]
    return {
        "mean_px": float(distances.mean()), "median_px": float(np.median(distances)),
        "p90_px": float(np.percentile(distances, 90)), "max_px": float(distances.max()),
        "per_point": [{"point": name, "mean_px": float(distances[:, k].mean()), "median_px": float(np.median(distances[:, k]))}
                      for k, name in enumerate(classes)],
        "worst": [{"file": file_of(samples, results["index"][i]), "distance_px": float(per_image[i])} for i in worst],
        "figures": sample_figure(results, samples, task, model_size(task), run_dir, "point_samples.png"),
    }


def markdown(section: dict[str, Any], report: dict[str, Any]) -> list[str]:
    lines = ["## Point error in pixels of the original images", "",
             table(["mean", "median", "90th percentile", "max"],
                   [[fmt(section[k]) for k in ("mean_px", "median_px", "p90_px", "max_px")]]), "",
             table(["point", "mean px", "median px"],
                   [[r["point"], fmt(r["mean_px"]), fmt(r["median_px"])] for r in section["per_point"]]), "",
             "## Worst images", "",
             table(["file", "distance (px)"],
                   [[f"`{Path(r['file']).name}`", fmt(r["distance_px"])] for r in section["worst"]]), ""]
    if "point_samples" in section.get("figures", {}):
        lines += ["![true (green) and predicted (red) points](point_samples.png)", ""]
    return lines


def metric_function(results: dict[str, Any], classes: list[str], task: Any = None) -> Any:
    """Mean point distance in pixels and the loss, for bootstrap weights per test image."""
    distances = pixel_distances(results["prediction"], results["target"].float(), results["size"]).numpy()
    losses = results["loss"].numpy()

    def scores(weights: np.ndarray) -> dict[str, float]:
        return {"dist_px": weighted_mean(distances, weights), "loss": weighted_mean(losses, weights)}

    return scores
