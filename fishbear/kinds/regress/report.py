"""Image regression's report section: MAE, RMSE and R² per value against the baseline of
predicting the training mean, predicted-against-actual scatter plots, and the worst errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fishbear.kinds.regress import RegressSettings, values
from fishbear.reports.intervals import weighted_mean
from fishbear.reports.plots import save_figure
from fishbear.reports.tables import file_of, fmt, model_size, sample_figure, table


def _scores(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    error = predicted - actual
    spread = ((actual - actual.mean()) ** 2).sum()
    return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error**2).mean())),
            "r2": float(1 - (error**2).sum() / spread) if spread > 0 else None}


def scatter_figure(predicted: np.ndarray, actual: np.ndarray, names: list[str]) -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4), squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[0], names)):
        low = float(min(predicted[:, k].min(), actual[:, k].min()))
        high = float(max(predicted[:, k].max(), actual[:, k].max()))
        ax.scatter(actual[:, k], predicted[:, k], s=12, alpha=0.6)
        ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="predicted = actual")
        ax.set_xlabel(f"actual {name}")
        ax.set_ylabel(f"predicted {name}")
        ax.set_title(f"{name}: MAE {np.abs(predicted[:, k] - actual[:, k]).mean():.3f} (test)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def section(results: dict[str, Any], classes: list[str], run_dir: Path, samples: list[Path],
            task: Any = None) -> dict[str, Any]:
    settings = task.settings if task is not None else RegressSettings()
    predicted = values(results["prediction"], settings).numpy().astype(np.float64)
    actual = results["target"].numpy().astype(np.float64).reshape(len(predicted), -1)
    mean = np.asarray(settings.value_mean if settings.value_mean is not None else actual.mean(0),
                      dtype=np.float64).reshape(-1)
    per_value = []
    for k, name in enumerate(classes):
        scores = _scores(predicted[:, k], actual[:, k])
        baseline = _scores(np.full_like(actual[:, k], mean[k]), actual[:, k])
        entry = {"value": name, **scores, "baseline_mae": baseline["mae"], "baseline_rmse": baseline["rmse"],
                 "train_mean": float(mean[k])}
        if np.allclose(actual[:, k], np.round(actual[:, k])):  # counts: how often the rounded count is right
            entry["exact"] = float((np.round(predicted[:, k]) == actual[:, k]).mean())
        per_value.append(entry)
    errors = np.abs(predicted - actual).mean(1)
    order = errors.argsort()[::-1].tolist()
    save_figure(scatter_figure(predicted, actual, classes), str(run_dir / "regression_scatter.png"))
    figures = {"regression_scatter": "regression_scatter.png"}
    figures.update(sample_figure(results, samples, task, model_size(task), run_dir, "regression_worst.png", order=order))
    return {
        **_scores(predicted, actual),
        "baseline_mae": float(np.abs(mean - actual).mean()),
        "per_value": per_value,
        "worst": [{"file": file_of(samples, results["index"][i]), "error": float(errors[i]),
                   "predicted": predicted[i].tolist(), "actual": actual[i].tolist()} for i in order[:9]],
        "figures": figures,
    }


def markdown(section: dict[str, Any], report: dict[str, Any]) -> list[str]:
    lines = ["## Values against predicting the training mean", "",
             table(["value", "MAE", "baseline MAE", "RMSE", "baseline RMSE", "R²", "exact (rounded)"],
                   [[r["value"], fmt(r["mae"]), fmt(r["baseline_mae"]), fmt(r["rmse"]), fmt(r["baseline_rmse"]),
                     fmt(r["r2"]), fmt(r.get("exact"))] for r in section["per_value"]]), "",
             "![predicted against actual](regression_scatter.png)", "",
             "## Worst errors", "",
             table(["file", "predicted", "actual", "error"],
                   [[f"`{Path(r['file']).name}`", " ".join(f"{v:.3g}" for v in r["predicted"]),
                     " ".join(f"{v:.3g}" for v in r["actual"]), fmt(r["error"])] for r in section["worst"]]), ""]
    if "regression_worst" in section.get("figures", {}):
        lines += ["![worst errors: predicted / true](regression_worst.png)", ""]
    return lines


def metric_function(results: dict[str, Any], classes: list[str], task: Any = None) -> Any:
    """MAE, RMSE, R² (averaged over values) and the loss, for bootstrap weights per test image."""
    predicted = values(results["prediction"], task.settings if task is not None else RegressSettings()).numpy(
    ).astype(np.float64)
    actual = results["target"].numpy().astype(np.float64).reshape(len(predicted), -1)
    error = predicted - actual
    losses = results["loss"].numpy()

    def scores(weights: np.ndarray) -> dict[str, float]:
        total = weights.sum()
        mean = weights @ actual / total
        spread = weights @ (actual - mean) ** 2
        residual = weights @ error**2
        r2 = np.where(spread > 0, 1 - residual / np.where(spread > 0, spread, 1), np.nan)
        return {"mae": weighted_mean(np.abs(error), weights), "rmse": float(np.sqrt(weighted_mean(error**2, weights))),
                "r2": float(np.nanmean(r2)) if np.isfinite(r2).any() else None, "loss": weighted_mean(losses, weights)}

    return scores
