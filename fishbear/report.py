"""The run report: ``report.json`` for programs, ``report.md`` and figures for people.

The common part (metrics, data, config summary, versions, device, timings) is the same for every
task kind; each kind adds its own section (``SECTIONS``), built from the per-image test results
the task keeps. Everything is written atomically.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from fishbear.io import atomic_write_json, atomic_write_text
from fishbear.plots import confusion_matrix_figure, save_figure

PACKAGES = ("fishbear", "torch", "torchvision", "lightning", "torchmetrics", "hydra-core", "albumentations",
            "scikit-learn", "numpy")


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(accelerator: str | None = None) -> dict[str, Any]:
    import os

    import torch

    info: dict[str, Any] = {"accelerator": accelerator or "cpu", "platform": platform.platform(),
                            "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available() and accelerator in (None, "gpu", "cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


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
    losses = results["loss"].numpy()
    probs = results["prediction"].numpy()
    out = []
    for i in losses.argsort()[::-1][:k]:
        index = int(results["index"][i])
        predicted = int(probs[i].argmax())
        out.append({"file": str(samples[index]) if index < len(samples) else str(index),
                    "actual": classes[int(results["target"][i])], "predicted": classes[predicted],
                    "loss": float(losses[i]), "probability": float(probs[i][predicted])})
    return out


def top_losses_figure(rows: list[dict[str, Any]]) -> Any:
    from PIL import Image

    from fishbear.plots import image_grid

    images, titles = [], []
    for row in rows:
        with Image.open(row["file"]) as image:
            image = image.convert("RGB")
            image.thumbnail((160, 160))
            images.append(np.asarray(image, dtype=np.float32) / 255.0)
        titles.append(f"{row['predicted']}/{row['actual']}\n{row['loss']:.2f} / {row['probability']:.2f}")
    fig = image_grid(images, titles, columns=3, size=2.4)
    fig.suptitle("Top losses: predicted/actual, loss / probability of the prediction", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def classification_section(results: dict[str, Any], classes: list[str], run_dir: Path,
                           samples: list[Path]) -> dict[str, Any]:
    probs = results["prediction"].numpy()
    targets = results["target"].numpy()
    predicted = probs.argmax(axis=1)
    labels = list(range(len(classes)))
    matrix = confusion_matrix(targets, predicted, labels=labels)
    per_class = classification_report(targets, predicted, labels=labels, target_names=classes,
                                      output_dict=True, zero_division=0)
    save_figure(confusion_matrix_figure(matrix, classes), str(run_dir / "confusion_matrix.png"))
    figures = {"confusion_matrix": "confusion_matrix.png"}
    worst = top_losses(results, classes, samples)
    if worst and all(Path(row["file"]).is_file() for row in worst):
        save_figure(top_losses_figure(worst), str(run_dir / "top_losses.png"))
        figures["top_losses"] = "top_losses.png"
    return {
        "accuracy": float((predicted == targets).mean()),
        "classification_report": per_class,
        "confusion_matrix": matrix.tolist(),
        "most_confused": most_confused(matrix, classes),
        "top_losses": worst,
        "figures": figures,
    }


SECTIONS: dict[str, Callable[[dict[str, Any], list[str], Path, list[Path]], dict[str, Any]]] = {
    "classify": classification_section,
}


def build_report(
    *,
    kind: str,
    classes: list[str],
    results: dict[str, Any],
    metrics: dict[str, float],
    run_dir: Path,
    data: dict[str, Any],
    config: dict[str, Any],
    samples: list[Path] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the report and write the kind's figures into ``run_dir``; ``samples`` are the
    test split's image files, in dataset order, so results can name their files."""
    report: dict[str, Any] = {
        "kind": kind,
        "metrics": {k: float(v) for k, v in sorted(metrics.items())},
        "classes": classes,
        "data": data,
        "config": config,
        "versions": versions(),
        **(extra or {}),
    }
    if results and kind in SECTIONS:
        report[kind] = SECTIONS[kind](results, classes, run_dir, list(samples or []))
    return report


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_markdown(report: dict[str, Any]) -> str:
    config = report.get("config", {})
    lines = [f"# Run report: {config.get('choices', {}).get('model', '?')} on {report['data'].get('name', '?')}", ""]
    lines += ["## Test metrics", "", _table(["metric", "value"], [[k, _fmt(v)] for k, v in report["metrics"].items()]), ""]
    section = report.get("classify")
    if section:
        classes = report["classes"]
        rows = [[name, _fmt(section["classification_report"][name]["precision"]),
                 _fmt(section["classification_report"][name]["recall"]),
                 _fmt(section["classification_report"][name]["f1-score"]),
                 int(section["classification_report"][name]["support"])] for name in classes]
        for avg in ("macro avg", "weighted avg"):
            entry = section["classification_report"][avg]
            rows.append([f"*{avg}*", _fmt(entry["precision"]), _fmt(entry["recall"]), _fmt(entry["f1-score"]),
                         int(entry["support"])])
        lines += ["## Per class (scikit-learn classification report)", "",
                  _table(["class", "precision", "recall", "f1", "support"], rows), ""]
        matrix = section["confusion_matrix"]
        lines += ["## Confusion matrix (rows: actual, columns: predicted)", "",
                  _table(["actual \\ predicted", *classes], [[c, *row] for c, row in zip(classes, matrix)]), "",
                  "![confusion matrix](confusion_matrix.png)", ""]
        confused = section["most_confused"][:10]
        if confused:
            lines += ["## Most confused", "",
                      _table(["actual", "predicted", "images"], [[p["actual"], p["predicted"], p["count"]] for p in confused]), ""]
        worst = section.get("top_losses", [])
        if worst:
            lines += ["## Top losses", "",
                      _table(["file", "actual", "predicted", "loss", "probability"],
                             [[f"`{Path(r['file']).name}`", r["actual"], r["predicted"], _fmt(r["loss"]),
                               _fmt(r["probability"])] for r in worst]), ""]
            if "top_losses" in section.get("figures", {}):
                lines += ["![top losses](top_losses.png)", ""]
    data = report["data"]
    lines += ["## Data", "", _table(["", ""], [
        ["dataset", data.get("name")], ["root", f"`{data.get('root')}`"], ["kind", report["kind"]],
        ["classes", ", ".join(report["classes"])], ["images per split", data.get("sizes")],
        ["image size", data.get("image_size")], ["test split", data.get("test_split")],
        ["unreadable files left out", len(data.get("skipped", []))]]), ""]
    lines += ["## Run", "", _table(["", ""], [
        ["overrides", " ".join(config.get("overrides", [])) or "(none)"],
        ["choices", ", ".join(f"{k}={v}" for k, v in config.get("choices", {}).items())],
        ["epochs", report.get("epochs")], ["best checkpoint", f"`{report.get('best_checkpoint')}`"],
        ["fit time (s)", _fmt(report.get("fit_seconds"))], ["wall time (s)", _fmt(report.get("wall_seconds"))],
        ["device", report.get("device", {}).get("gpu") or report.get("device", {}).get("cpu")],
        ["precision", config.get("precision")],
        ["versions", ", ".join(f"{k} {v}" for k, v in report["versions"].items())]]), ""]
    return "\n".join(lines)


def write_report(run_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    json_path = atomic_write_json(run_dir / "report.json", report)
    md_path = atomic_write_text(run_dir / "report.md", render_markdown(report))
    return json_path, md_path
