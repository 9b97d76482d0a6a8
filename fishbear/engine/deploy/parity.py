"""Does the export answer as the checkpoint does? Measured on real pictures, never random tensors.

Four checks, each against a gate (the command fails naming the gates that did not pass):

1. **tensors**: the same fitted pictures through the ONNX graph (onnxruntime) and through the
   same graph in PyTorch: the largest absolute and relative difference of each output, at batch
   1 and batch N, and batch N against batch 1;
2. **decisions**: each picture read by ``fishbear predict``'s own path (the checkpoint, its
   albumentations pipeline, the kind's reading) and by the standalone predictor (its OpenCV fit,
   the ONNX graph, its reading): the share of identical decisions (class, tags, mask pixels) and
   the largest difference of a number (probabilities, values, pixels of points);
3. **the headline metric** of the test pictures from both, each with its 95% interval
   (fishbear's interval code: Wilson's for a proportion of independent pictures, else a seeded
   bootstrap), and their difference;
4. **file to answer**: ``python predict.py FOLDER`` (the standalone predictor, a process of its
   own) against ``fishbear predict``'s CSV of the same files: the same columns in the same order,
   the same files, the same decisions, numbers within the kind's tolerance.

Gates, and why: a probability may differ by 1e-4 (float32 kernels of onnxruntime and PyTorch
agree to about 1e-6 on these graphs: two orders of margin, while a fit that differs by one pixel
value moves real pictures' probabilities by more); decisions must be identical (100%; for masks,
99.99% of pixels, where ties at the argmax can fall either way); values within 1e-3 of their
units, points within 0.05 px.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fishbear.engine.deploy.box_parity import BOX_IOU, BOX_ROUNDING, matched_boxes, reading_boxes, single_parity

TENSOR_ATOL = 1e-4
MASK_AGREEMENT = 0.9999
# the columns that name a file each side wrote (their folders differ), not an answer
PATH_COLUMNS = ("file", "mask", "drawn", "voc_xml")


@dataclass
class Gate:
    name: str
    value: float
    limit: float
    higher_is_better: bool
    note: str = ""

    @property
    def passed(self) -> bool:
        if math.isnan(self.value):
            return False
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit


def _numbers(answer: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a reading (probabilities, values, point coordinates), by path."""
    out: dict[str, float] = {}
    for key, value in answer.items():
        if key in ("summary", "columns", "rows", "mask"):
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_numbers(value, f"{path}."))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
            out.update({f"{path}[{i}]": float(v) for i, v in enumerate(value)})
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[path] = float(value)
    return out


def _decisions(answer: dict[str, Any]) -> dict[str, Any]:
    """The non-numeric leaves of a reading: the decisions (a class, a list of tags)."""
    return {k: (tuple(v) if isinstance(v, list) and not all(isinstance(x, (int, float)) for x in v) else v)
            for k, v in answer.items() if k in ("label", "tags")}


def agreement(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> dict[str, float]:
    same = [_decisions(a) == _decisions(b) for a, b in zip(ours, theirs)]
    diffs = [abs(x - _numbers(b).get(k, math.nan)) for a, b in zip(ours, theirs) for k, x in _numbers(a).items()]
    out = {"pictures": len(ours), "same_decisions": float(np.mean(same)) if same else math.nan,
           "max_number_difference": float(np.nanmax(diffs)) if diffs else 0.0}
    if ours and "boxes" in ours[0]:  # every box from the score threshold on, matched across the two readings
        found = [matched_boxes(reading_boxes(a), reading_boxes(b)) for a, b in zip(ours, theirs)]
        both = sum(total for _, total, _, _ in found)
        out["boxes_matched"] = 2 * sum(pairs for pairs, *_ in found) / both if both else 1.0
        out["boxes"] = both / 2
        out["max_corner_difference"] = max((corner for *_, corner, _ in found), default=0.0)
    masks = [(a["mask"], b["mask"]) for a, b in zip(ours, theirs) if "mask" in a]
    if masks:
        out["pixel_agreement"] = float(sum((x == y).sum() for x, y in masks) / sum(x.size for x, _ in masks))
    return out


def tensor_parity(export_dir: Path, graph: Any, files: list[Path], batch: int) -> dict[str, Any]:
    """onnxruntime against PyTorch on the same fitted pictures, at batch 1 and batch ``batch``."""
    import torch

    from fishbear.engine.deploy.standalone import OnnxPredictor, load_rgb, prepare

    onnx = OnnxPredictor(export_dir)
    images = [load_rgb(p) for p in files]
    if onnx.meta.get("batch") == 1:
        return single_parity(onnx, graph, images)
    worst: dict[str, dict[str, float]] = {}
    batch_vs_single = 0.0
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        x = np.stack([prepare(image, onnx.meta) for image in chunk])
        sizes = np.array([image.shape[:2] for image in chunk], dtype=np.int64)
        ours = onnx.run(x, sizes)
        with torch.no_grad():
            reference = [t.numpy() for t in graph(torch.from_numpy(x), torch.from_numpy(sizes))]
        singles = [onnx.run(x[i:i + 1], sizes[i:i + 1]) for i in range(len(chunk))]
        for name, want in zip(ours, reference):
            got = ours[name]
            abs_diff = float(np.abs(got - want).max())
            rel = float((np.abs(got - want) / np.maximum(np.abs(want), 1e-6)).max())
            entry = worst.setdefault(name, {"max_abs": 0.0, "max_rel": 0.0})
            entry["max_abs"], entry["max_rel"] = max(entry["max_abs"], abs_diff), max(entry["max_rel"], rel)
            one = np.concatenate([s[name] for s in singles])
            batch_vs_single = max(batch_vs_single, float(np.abs(one - got).max()))
    return {"outputs": worst, "batch": batch, "batch_vs_single_max_abs": batch_vs_single}


def headline(kind: Any, classes: list[str], answers: list[dict[str, Any]], samples: list[Any], seed: int = 0) -> dict[str, Any]:
    """The kind's headline metric of ``answers`` with its 95% interval (Wilson for a proportion,
    else a seeded bootstrap over pictures)."""
    from fishbear.reports.intervals import bootstrap, weighted_mean, wilson

    name, values, higher = kind.headline(answers, samples, classes)
    value = float(np.mean(values))
    if set(np.unique(values)) <= {0.0, 1.0}:
        low, high = wilson(float(values.sum()), len(values))
        method = "Wilson"
    else:
        found = bootstrap(lambda w: {"m": weighted_mean(values, w)}, len(values), resamples=1000, seed=seed)["m"]
        low, high, method = found["low"], found["high"], found["method"]
    return {"metric": name, "value": value, "low": float(low), "high": float(high), "method": method,
            "higher_is_better": higher, "pictures": len(values)}


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def csv_parity(ours: Path, theirs: Path, tolerance: float) -> dict[str, Any]:
    """``fishbear predict``'s CSV against the standalone predictor's: columns, files, cells."""
    columns_a, rows_a = _read_csv(ours)
    columns_b, rows_b = _read_csv(theirs)
    same_files = [a["file"] for a in rows_a] == [b["file"] for b in rows_b]
    exact = numeric = 0
    worst = 0.0
    differing: list[str] = []
    for a, b in zip(rows_a, rows_b):
        for column in columns_a:
            if column in PATH_COLUMNS:
                continue
            x, y = a.get(column, ""), b.get(column, "")
            try:
                diff = abs(float(x) - float(y))
                numeric += 1
                worst = max(worst, diff)
            except ValueError:
                exact += x == y
                if x != y and len(differing) < 5:
                    differing.append(f"{a['file']}: {column} {x!r} / {y!r}")
    cells = sum(1 for a in rows_a for c in columns_a if c not in PATH_COLUMNS) - numeric
    return {"same_columns_in_order": columns_a == columns_b, "columns": columns_a, "same_files": same_files,
            "rows": len(rows_a), "same_text_cells": exact / cells if cells else 1.0, "max_number_difference": worst,
            "tolerance": tolerance, "differing": differing}


# what the standalone predictor must run without: importing any of these fails in its process
NOT_NEEDED = ("torch", "torchvision", "lightning", "pytorch_lightning", "hydra", "omegaconf", "albumentations", "fishbear")
_WITHOUT = ("import runpy, sys\n"
            "for name in {names!r}: sys.modules[name] = None  # import name -> ImportError\n"
            "sys.argv = {argv!r}\n"
            "runpy.run_path(sys.argv[0], run_name='__main__')\n")


def run_standalone(export_dir: Path, folder: Path, output: Path, masks: Path,
                   without: tuple[str, ...] = NOT_NEEDED) -> subprocess.CompletedProcess:
    """The standalone predictor as a user runs it, ``python predict.py FOLDER``, in a process of
    its own where importing PyTorch, Lightning, Hydra, albumentations or fishbear fails."""
    argv = [str(export_dir / "predict.py"), str(folder), "--output", str(output), "--masks", str(masks),
            "--boxes", str(masks.with_name(masks.name + "_boxes")), "--overwrite"]
    code = _WITHOUT.format(names=tuple(without), argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800,
                          cwd=str(export_dir))


def gates(report: dict[str, Any], tolerance: float) -> list[Gate]:
    out = [Gate(f"tensors: {name} max abs difference", entry["max_abs"], entry.get("limit", max(TENSOR_ATOL, tolerance)),
                False) for name, entry in report["tensors"]["outputs"].items()]
    if "boxes_matched" in report["tensors"]:  # one picture a run: no batch to compare
        out.append(Gate(f"tensors: boxes matched at IoU >= {BOX_IOU}", report["tensors"]["boxes_matched"], 1.0, True))
    else:
        out.append(Gate("tensors: batch N against batch 1", report["tensors"]["batch_vs_single_max_abs"],
                        max(TENSOR_ATOL, tolerance), False))
    decisions = report["decisions"]
    out.append(Gate("decisions: identical", decisions["same_decisions"], 1.0, True))
    out.append(Gate("decisions: max abs difference of a number", decisions["max_number_difference"], tolerance, False))
    if "boxes_matched" in decisions:
        out.append(Gate(f"decisions: boxes matched at IoU >= {BOX_IOU}", decisions["boxes_matched"], 1.0, True))
        # both readings round corners to 0.1 px: a corner near a rounding edge may differ by one step
        out.append(Gate("decisions: max difference of a box corner (px)", decisions["max_corner_difference"],
                        BOX_ROUNDING + 1e-6, False))
    if "pixel_agreement" in decisions:
        out.append(Gate("decisions: mask pixels identical", decisions["pixel_agreement"], MASK_AGREEMENT, True))
    files = report.get("files")
    if files is not None:
        out.append(Gate("file to answer: same columns in order and same files",
                        float(files["same_columns_in_order"] and files["same_files"]), 1.0, True))
        out.append(Gate("file to answer: identical decisions in the CSV", files["same_text_cells"], 1.0, True))
        # the CSVs are written at 4-6 decimals: a rounding step more than the tolerance of the numbers
        out.append(Gate("file to answer: max abs difference of a CSV number", files["max_number_difference"],
                        max(tolerance, 1e-4, BOX_ROUNDING if "boxes_matched" in decisions else 0.0) + 1e-6, False))
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Parity of {report['export']} with {report['checkpoint']}", "",
             f"{report['pictures']} real pictures ({report['source']}); kind {report['kind']}. "
             f"{'Every gate passed.' if report['passed'] else 'FAILED: ' + ', '.join(report['failed'])}", "",
             "| gate | value | limit | passed |", "|---|---|---|---|"]
    for gate in report["gates"]:
        sign = ">=" if gate["higher_is_better"] else "<="
        lines.append(f"| {gate['name']} | {gate['value']:.3g} | {sign} {gate['limit']:.3g} | "
                     f"{'yes' if gate['passed'] else '**no**'} |")
    lines += ["", "## Tensors (onnxruntime against PyTorch, the same fitted pictures)", "",
              "| output | max abs difference | max relative difference |", "|---|---|---|"]
    lines += [f"| {name} | {e['max_abs']:.3g} | {e['max_rel']:.3g} |" for name, e in report["tensors"]["outputs"].items()]
    if "boxes_matched" in report["tensors"]:
        lines += ["", f"One picture a run of the graph: {report['tensors']['boxes']:g} boxes of the model (from its own "
                  f"minimum score), {report['tensors']['boxes_matched']:.1%} matched at IoU >= {BOX_IOU} with the "
                  f"same class; the differences above are of matched boxes.", ""]
    else:
        lines += ["", f"Batch {report['tensors']['batch']} against batch 1: max difference "
                  f"{report['tensors']['batch_vs_single_max_abs']:.3g}.", ""]
    if report.get("metric"):
        lines += ["## The headline metric", "", "| predictor | metric | value | 95% interval |", "|---|---|---|---|"]
        for side, entry in report["metric"].items():
            if isinstance(entry, dict):
                lines.append(f"| {side} | {entry['metric']} | {entry['value']:.4f} | {entry['low']:.4f}-"
                             f"{entry['high']:.4f} ({entry['method']}) |")
        lines += ["", f"Difference: {report['metric']['difference']:.4g}.", ""]
    if report.get("map"):
        found = report["map"]
        lines += ["## COCO mAP of every box (both runtimes)", "",
                  "| predictor | mAP@0.5 | 95% interval | mAP@[.5:.95] | 95% interval |", "|---|---|---|---|---|"]
        for side in ("checkpoint", "export"):
            e = found[side]
            lines.append(f"| {side} | {e['map_50']:.4f} | {e['map_50_low']:.4f}-{e['map_50_high']:.4f} | {e['map']:.4f} | "
                         f"{e['map_low']:.4f}-{e['map_high']:.4f} |")
        low, high = found["difference_map_50_interval"]
        lines += ["", f"Bootstrap over the {found['pictures']} pictures, {found['resamples']} resamples; mAP@0.5 "
                  f"difference {found['difference_map_50']:.4g} ({low:.4g} to {high:.4g} on the same resamples).", ""]
    if report.get("quantized"):
        q = report["quantized"]
        lines += ["## int8 (dynamic quantisation), not gated", "",
                  f"Decisions identical to the checkpoint's on {q['decisions']['same_decisions']:.1%} of the pictures; "
                  f"largest difference of a number {q['decisions']['max_number_difference']:.3g}"
                  + (f"; {q['metric']['metric']} {q['metric']['value']:.4f} ({q['metric']['low']:.4f}-"
                     f"{q['metric']['high']:.4f}) against {report['metric']['checkpoint']['value']:.4f}"
                     if q.get("metric") else "") + f"; {q['size_mb']:.2f} MB against {report['size_mb']:.2f} MB.", ""]
    return "\n".join(lines) + "\n"


def gate_dicts(found: list[Gate]) -> list[dict[str, Any]]:
    return [{**asdict(g), "passed": g.passed} for g in found]


def run_test_split(meta: Any, limit: int) -> tuple[list[Any], str]:
    """The test pictures of the run the checkpoint belongs to, in the split's order, at most
    ``limit``; and a line saying which they are and whether the split still is the one the
    weights were tested on (its fingerprint)."""
    from fishbear.engine.run_data import run_datamodule, split_note

    datamodule = run_datamodule(meta)
    split = datamodule.test_split
    samples = datamodule.samples(split)
    return samples[:limit], (f"{min(limit, len(samples))} of the {len(samples)} pictures of the run's "
                             f"{split_note(datamodule, meta, split)}")
