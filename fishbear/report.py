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

PACKAGES = ("fishbear", "torch", "torchvision", "lightning", "torchmetrics", "pycocotools", "hydra-core", "albumentations",
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
    probs = results["prediction"].numpy()
    out = []
    for row, i in zip(_worst(results, samples, k), _highest_losses(results, k)):
        predicted = int(probs[i].argmax())
        out.append({**row, "actual": classes[int(results["target"][i])], "predicted": classes[predicted],
                    "probability": float(probs[i][predicted])})
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
                           samples: list[Path], task: Any = None) -> dict[str, Any]:
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


def _file(samples: list[Path], index: Any) -> str:
    index = int(index)
    return str(samples[index]) if index < len(samples) else str(index)


def _shown_images(results: dict[str, Any], samples: list[Path], size: tuple[int, int], k: int,
                  order: list[int] | None = None) -> tuple[np.ndarray, list[int]]:
    """The first ``k`` test images, resized to ``size`` (height, width) as the model saw them,
    and their positions in the results; empty when the files are gone."""
    from PIL import Image

    shown, rows = [], []
    for row in (order if order is not None else range(len(results["index"])))[:k]:
        path = Path(_file(samples, results["index"][row]))
        if not path.is_file():
            return np.zeros((0, *size, 3), dtype=np.float32), []
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
            shown.append(np.asarray(resized, dtype=np.float32) / 255.0)
        rows.append(row)
    return np.stack(shown) if shown else np.zeros((0, *size, 3), dtype=np.float32), rows


def _sample_figure(results: dict[str, Any], samples: list[Path], task: Any, size: tuple[int, int], run_dir: Path,
                   filename: str, k: int = 8, order: list[int] | None = None) -> dict[str, str]:
    """Test images (the first ``k``, or of ``order``) with targets and predictions drawn by the
    task; ``{}`` when there is nothing to draw."""
    if task is None:
        return {}
    images, rows = _shown_images(results, samples, size, k, order)
    if not rows:
        return {}
    figure = task.draw(images, _rows(results["target"], rows), _rows(results["prediction"], rows), results["size"][rows])
    save_figure(figure, str(run_dir / filename))
    return {filename.removesuffix(".png"): filename}


def _rows(values: Any, rows: list[int]) -> Any:
    """Rows of a tensor, or of a list (boxes: one dict per image)."""
    return [values[i] for i in rows] if isinstance(values, list) else values[rows]


def _model_size(task: Any) -> tuple[int, int]:
    from fishbear.data.transforms import as_hw

    return as_hw(getattr(task, "meta", {}).get("image_size", 128))


def _highest_losses(results: dict[str, Any], k: int) -> list[int]:
    return [int(i) for i in results["loss"].numpy().argsort()[::-1][:k]]


def _worst(results: dict[str, Any], samples: list[Path], k: int = 9) -> list[dict[str, Any]]:
    """The ``k`` test images with the highest loss, by file."""
    return [{"file": _file(samples, results["index"][i]), "loss": float(results["loss"][i])}
            for i in _highest_losses(results, k)]


def multilabel_section(results: dict[str, Any], classes: list[str], run_dir: Path, samples: list[Path],
                       task: Any = None) -> dict[str, Any]:
    """Per-tag precision and recall at the global threshold and at the tuned ones, side by side."""
    import torch

    from fishbear.metrics import sample_fbeta

    probabilities, truth = results["prediction"], results["target"] > 0.5
    beta = getattr(task, "beta", 2.0)
    cuts = {"global": torch.full((len(classes),), float(getattr(task, "threshold", 0.2)))}
    if task is not None and bool(task.thresholds_tuned):
        cuts["tuned"] = task.thresholds.detach().cpu().float()
    section: dict[str, Any] = {"beta": beta, "thresholds": {name: [float(v) for v in cut] for name, cut in cuts.items()}}
    for name, cut in cuts.items():
        predicted = probabilities > cut
        report = classification_report(truth.numpy(), predicted.numpy(), target_names=classes, output_dict=True,
                                       zero_division=0)
        section[name] = {"fbeta": float(sample_fbeta(predicted, truth, beta).mean()),
                         "accuracy": float((predicted == truth).float().mean()), "per_tag": report}
    section["top_losses"] = _worst(results, samples)
    section["figures"] = _sample_figure(results, samples, task, _model_size(task), run_dir,
                                        "tag_samples.png")
    return section


def segmentation_section(results: dict[str, Any], classes: list[str], run_dir: Path, samples: list[Path],
                         task: Any = None) -> dict[str, Any]:
    """IoU per class from the pixel confusion matrix (void left out), pixel accuracy, overlays."""
    import torch

    from fishbear.metrics import pixel_confusion, segmentation_scores

    void = getattr(task, "void_index", None)
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
        "top_losses": _worst(results, samples),
        "figures": _sample_figure(results, samples, task, size, run_dir, "segmentation_samples.png", k=6),
    }


def points_section(results: dict[str, Any], classes: list[str], run_dir: Path, samples: list[Path],
                   task: Any = None) -> dict[str, Any]:
    """Distances in pixels of the original images, per point, with the worst images named."""
    from fishbear.metrics import pixel_distances

    distances = pixel_distances(results["prediction"], results["target"].float(), results["size"]).numpy()
    per_image = distances.mean(1)
    worst = per_image.argsort()[::-1][:9]
    return {
        "mean_px": float(distances.mean()), "median_px": float(np.median(distances)),
        "p90_px": float(np.percentile(distances, 90)), "max_px": float(distances.max()),
        "per_point": [{"point": name, "mean_px": float(distances[:, k].mean()), "median_px": float(np.median(distances[:, k]))}
                      for k, name in enumerate(classes)],
        "worst": [{"file": _file(samples, results["index"][i]), "distance_px": float(per_image[i])} for i in worst],
        "figures": _sample_figure(results, samples, task, _model_size(task), run_dir, "point_samples.png"),
    }


def detection_section(results: dict[str, Any], classes: list[str], run_dir: Path, samples: list[Path],
                      task: Any = None) -> dict[str, Any]:
    """AP per class (at IoU 0.5 and over 0.5:0.95), the precision-recall curve of each class at
    IoU 0.5, what was found and missed from the score threshold on, the images with most errors."""
    from fishbear.metrics import box_map
    from fishbear.plots import pr_curve_figure

    metric = box_map(class_metrics=True, extended_summary=True)
    metric.update(results["prediction"], results["target"])
    summary = metric.compute()
    # precision: IoU thresholds x 101 recall points x classes x area ranges x max detections; -1 = no data
    precision = summary["precision"][:, :, :, 0, -1].numpy()
    present = [int(c) for c in summary["classes"].reshape(-1).tolist()]
    threshold = float(getattr(task, "score_threshold", 0.5))
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
    figures.update(_sample_figure(results, samples, task, _model_size(task), run_dir, "detection_samples.png",
                                  order=order))
    return {
        "map": float(summary["map"]), "map_50": float(summary["map_50"]), "map_75": float(summary["map_75"]),
        "score_threshold": threshold,
        "per_class": per_class,
        "images_without_boxes": int((~truth).sum()),
        "presence": _presence(found, truth),
        "worst": [{"file": _file(samples, results["index"][i]), "errors": int(results["loss"][i])}
                  for i in _highest_losses(results, 9) if results["loss"][i] > 0],
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


Section = Callable[..., dict[str, Any]]
SECTIONS: dict[str, Section] = {
    "classify": classification_section,
    "multilabel": multilabel_section,
    "segment": segmentation_section,
    "points": points_section,
    "detect": detection_section,
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
    task: Any = None,
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
        report[kind] = SECTIONS[kind](results, classes, run_dir, list(samples or []), task)
    return report


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _classify_markdown(section: dict[str, Any], report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
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
    return lines


def _multilabel_markdown(section: dict[str, Any], report: dict[str, Any]) -> list[str]:
    names = [n for n in ("global", "tuned") if n in section]
    lines = [f"## F{section['beta']:g} (sample-averaged) at the global and the tuned thresholds", "",
             _table(["thresholds", f"F{section['beta']:g}", "accuracy"],
                    [[n, _fmt(section[n]["fbeta"]), _fmt(section[n]["accuracy"])] for n in names]), ""]
    header = ["tag", "support"]
    for n in names:
        header += [f"threshold ({n})", f"precision ({n})", f"recall ({n})"]
    rows = []
    for i, tag in enumerate(report["classes"]):
        row: list[Any] = [tag, int(section[names[0]]["per_tag"][tag]["support"])]
        for n in names:
            entry = section[n]["per_tag"][tag]
            row += [f"{section['thresholds'][n][i]:.2f}", _fmt(entry["precision"]), _fmt(entry["recall"])]
        rows.append(row)
    lines += ["## Per tag", "", _table(header, rows), ""]
    if "tag_samples" in section.get("figures", {}):
        lines += ["![test images: predicted / true tags](tag_samples.png)", ""]
    return lines


def _segment_markdown(section: dict[str, Any], report: dict[str, Any]) -> list[str]:
    void = f" (void code '{section['void']}' left out)" if section.get("void") else ""
    lines = [f"## Segmentation{void}", "",
             _table(["pixel accuracy", "mean IoU"], [[_fmt(section["pixel_accuracy"]), _fmt(section["mean_iou"])]]), "",
             "## IoU per class", "",
             _table(["class", "IoU", "pixels (test)"],
                    [[r["class"], "-" if r["iou"] is None else _fmt(r["iou"]), r["pixels"]] for r in section["per_class"]]), ""]
    if "segmentation_samples" in section.get("figures", {}):
        lines += ["![image with true mask, predicted mask](segmentation_samples.png)", ""]
    return lines


def _points_markdown(section: dict[str, Any], report: dict[str, Any]) -> list[str]:
    lines = ["## Point error in pixels of the original images", "",
             _table(["mean", "median", "90th percentile", "max"],
                    [[_fmt(section[k]) for k in ("mean_px", "median_px", "p90_px", "max_px")]]), "",
             _table(["point", "mean px", "median px"],
                    [[r["point"], _fmt(r["mean_px"]), _fmt(r["median_px"])] for r in section["per_point"]]), "",
             "## Worst images", "",
             _table(["file", "distance (px)"], [[f"`{Path(r['file']).name}`", _fmt(r["distance_px"])] for r in section["worst"]]), ""]
    if "point_samples" in section.get("figures", {}):
        lines += ["![true (green) and predicted (red) points](point_samples.png)", ""]
    return lines


def _detect_markdown(section: dict[str, Any], report: dict[str, Any]) -> list[str]:
    cut = section["score_threshold"]
    lines = ["## Boxes", "",
             _table(["mAP@[.5:.95]", "mAP@0.5", "mAP@0.75", "test images without boxes"],
                    [[_fmt(section["map"]), _fmt(section["map_50"]), _fmt(section["map_75"]),
                      section["images_without_boxes"]]]), "",
             f"## Per class (found, false and missed boxes from score {cut} on, at IoU 0.5)", "",
             _table(["class", "AP@0.5", "AP@[.5:.95]", "true boxes", "found", "false", "missed", "precision", "recall"],
                    [[r["class"], _fmt(r["ap_50"]), _fmt(r["ap"]), r["true_boxes"], r["found"], r["false_boxes"],
                      r["missed"], _fmt(r["precision"]), _fmt(r["recall"])] for r in section["per_class"]]), ""]
    presence = section.get("presence")
    if presence and presence["accuracy"] is not None:
        lines += [f"## Object or not, per image (a box from score {cut} on)", "",
                  _table(["accuracy", "with objects: found", "missed", "empty: flagged", "passed"],
                         [[_fmt(presence["accuracy"]), presence["with_objects_found"], presence["with_objects_missed"],
                           presence["empty_flagged"], presence["empty_passed"]]]), ""]
    if section["worst"]:
        lines += ["## Images with most errors (false + missed boxes)", "",
                  _table(["file", "errors"], [[f"`{Path(r['file']).name}`", r["errors"]] for r in section["worst"]]), ""]
    figures = section.get("figures", {})
    if "pr_curve" in figures:
        lines += ["![precision-recall curves](pr_curve.png)", ""]
    if "detection_samples" in figures:
        lines += ["![true (green) and predicted (red) boxes](detection_samples.png)", ""]
    return lines


MARKDOWN: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[str]]] = {
    "classify": _classify_markdown, "multilabel": _multilabel_markdown, "segment": _segment_markdown,
    "points": _points_markdown, "detect": _detect_markdown,
}


def render_markdown(report: dict[str, Any]) -> str:
    config = report.get("config", {})
    lines = [f"# Run report: {config.get('choices', {}).get('model', '?')} on {report['data'].get('name', '?')}", ""]
    lines += ["## Test metrics", "", _table(["metric", "value"], [[k, _fmt(v)] for k, v in report["metrics"].items()]), ""]
    kind = report["kind"]
    if report.get(kind) and kind in MARKDOWN:
        lines += MARKDOWN[kind](report[kind], report)
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
