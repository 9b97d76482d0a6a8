"""Single-label classification's report section: per-class precision, recall and F1
(scikit-learn), the confusion matrix and its most confused pairs, and the top losses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from fishbear.reports.intervals import weighted_mean
from fishbear.reports.plots import confusion_matrix_figure, save_figure
from fishbear.reports.tables import fmt, highest_losses, table, worst


def most_confused(matrix: np.ndarray, classes: list[str], min_val: int = 1) -> list[dict[str, Any]]:
    """Off-diagonal cells with at least ``min_val`` images, largest first (fastai's ``most_confused``)."""
    pairs = [
        {"actual": classes[i], "predicted": classes[j], "count": int(matrix[i, j])}
        for i in range(len(classes)) for j in range(len(classes))
        if i != j and matrix[i, j] >= min_val
    ]
    return sorted(pairs, key=lambda p: (-p["count"], p["actual"], p["predicted"]))


def top_losses(results: dict[str, Any], classes: list[str], samples: list[Path], k: int = 9) -> list[dict[str, Any]]:
    """The ``k`` test images with the highest loss: what the model got most wrong, or right with
    least confidence (fastai's ``top_losses``). Often a mislabelled file or a hard case."""
    probs = results["prediction"].numpy()
    out = []
    for row, i in zip(worst(results, samples, k), highest_losses(results, k)):
        predicted = int(probs[i].argmax())
        out.append({**row, "actual": classes[int(results["target"][i])], "predicted": classes[predicted],
                    "probability": float(probs[i][predicted])})
    return out


def top_losses_figure(rows: list[dict[str, Any]]) -> Any:
    from PIL import Image

    from fishbear.data.images import as_rgb
    from fishbear.reports.plots import image_grid

    images, titles = [], []
    for row in rows:
        with Image.open(row["file"]) as opened:
            image = Image.fromarray(as_rgb(opened))  # as the model read it: upright, 16-bit scaled
            image.thumbnail((160, 160))
            images.append(np.asarray(image, dtype=np.float32) / 255.0)
        titles.append(f"{row['predicted']}/{row['actual']}\n{row['loss']:.2f} / {row['probability']:.2f}")
    fig = image_grid(images, titles, columns=3, size=2.4,
                     title="Top losses: predicted/actual, loss / probability of the prediction")
    return fig


def section(results: dict[str, Any], classes: list[str], run_dir: Path, samples: list[Path],
            task: Any = None) -> dict[str, Any]:
    probs = results["prediction"].numpy()
    targets = results["target"].numpy()
    predicted = probs.argmax(axis=1)
    labels = list(range(len(classes)))
    matrix = confusion_matrix(targets, predicted, labels=labels)
    per_class = classification_report(targets, predicted, labels=labels, target_names=classes,
                                      output_dict=True, zero_division=0)
    save_figure(confusion_matrix_figure(matrix, classes), str(run_dir / "confusion_matrix.png"))
    figures = {"confusion_matrix": "confusion_matrix.png"}
    losses = top_losses(results, classes, samples)
    if losses and all(Path(row["file"]).is_file() for row in losses):
        save_figure(top_losses_figure(losses), str(run_dir / "top_losses.png"))
        figures["top_losses"] = "top_losses.png"
    return {
        "accuracy": float((predicted == targets).mean()),
        "classification_report": per_class,
        "confusion_matrix": matrix.tolist(),
        "most_confused": most_confused(matrix, classes),
        "top_losses": losses,
        "figures": figures,
    }


def markdown(section: dict[str, Any], report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    classes = report["classes"]
    scores = section["classification_report"]
    rows = [[name, fmt(scores[name]["precision"]), fmt(scores[name]["recall"]), fmt(scores[name]["f1-score"]),
             int(scores[name]["support"])] for name in classes]
    for avg in ("macro avg", "weighted avg"):
        entry = scores[avg]
        rows.append([f"*{avg}*", fmt(entry["precision"]), fmt(entry["recall"]), fmt(entry["f1-score"]),
                     int(entry["support"])])
    lines += ["## Per class (scikit-learn classification report)", "",
              table(["class", "precision", "recall", "f1", "support"], rows), ""]
    matrix = section["confusion_matrix"]
    lines += ["## Confusion matrix (rows: actual, columns: predicted)", "",
              table(["actual \\ predicted", *classes], [[c, *row] for c, row in zip(classes, matrix)]), "",
              "![confusion matrix](confusion_matrix.png)", ""]
    confused = section["most_confused"][:10]
    if confused:
        lines += ["## Most confused", "",
                  table(["actual", "predicted", "images"], [[p["actual"], p["predicted"], p["count"]] for p in confused]), ""]
    losses = section.get("top_losses", [])
    if losses:
        lines += ["## Top losses", "",
                  table(["file", "actual", "predicted", "loss", "probability"],
                        [[f"`{Path(r['file']).name}`", r["actual"], r["predicted"], fmt(r["loss"]),
                          fmt(r["probability"])] for r in losses]), ""]
        if "top_losses" in section.get("figures", {}):
            lines += ["![top losses](top_losses.png)", ""]
    return lines


def metric_function(results: dict[str, Any], classes: list[str], task: Any = None) -> Any:
    """Accuracy, macro F1 and the loss for bootstrap weights per test image (fishbear.reports.intervals)."""
    predicted = results["prediction"].numpy().argmax(axis=1)
    targets = results["target"].numpy()
    losses = results["loss"].numpy()
    n = results["prediction"].shape[1]
    correct = (predicted == targets).astype(np.float64)
    cells = targets * n + predicted

    def scores(weights: np.ndarray) -> dict[str, float]:
        matrix = np.bincount(cells, weights=weights, minlength=n * n).reshape(n, n)
        tp = matrix.diagonal()
        denominator = matrix.sum(0) + matrix.sum(1)
        f1 = np.divide(2 * tp, denominator, out=np.zeros(n), where=denominator > 0)
        return {"acc": weighted_mean(correct, weights), "f1": float(f1.mean()), "loss": weighted_mean(losses, weights)}

    return scores
