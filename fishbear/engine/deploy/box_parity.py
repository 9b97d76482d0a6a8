"""A detector's parity: its outputs are boxes, as many as the picture holds, so the two sides are
compared box by box (greedy one-to-one matching by class at IoU >= :data:`BOX_IOU`), not tensor by
tensor, and its accuracy is COCO mAP of every box from both runtimes with bootstrap intervals.
:mod:`fishbear.engine.deploy.parity` calls these for a graph of one picture a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

BOX_IOU = 0.5      # a box of one side matches one of the other of the same class at this IoU or more
BOX_PX = 0.05      # and its corners may differ by this many pixels of the picture
BOX_ROUNDING = 0.1  # a reading's (and a CSV's) box corners are written to 0.1 px


def matched_boxes(ours: tuple[np.ndarray, np.ndarray, np.ndarray],
                  theirs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[int, int, float, float]:
    """Greedy one-to-one matching of two sets of boxes (``(xyxy, scores, labels)``), best scores
    first, by class at IoU >= :data:`BOX_IOU`: the matched pairs, the boxes in all (both sides),
    the largest corner and score differences of a pair."""
    (a_box, a_score, a_label), (b_box, b_score, b_label) = ours, theirs
    if not len(a_box) or not len(b_box):
        return 0, len(a_box) + len(b_box), 0.0, 0.0
    low = np.maximum(a_box[:, None, :2], b_box[None, :, :2])
    high = np.minimum(a_box[:, None, 2:], b_box[None, :, 2:])
    inter = np.clip(high - low, 0, None).prod(axis=2)
    area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
    iou = inter / np.maximum(area(a_box)[:, None] + area(b_box)[None, :] - inter, 1e-9)
    used: set[int] = set()
    pairs, corner, score = 0, 0.0, 0.0
    for i in np.argsort(-a_score, kind="stable"):
        free = [j for j in range(len(b_box)) if j not in used and b_label[j] == a_label[i] and iou[i, j] >= BOX_IOU]
        if free:
            j = max(free, key=lambda k: iou[i, k])
            used.add(j)
            pairs += 1
            corner = max(corner, float(np.abs(a_box[i] - b_box[j]).max()))
            score = max(score, abs(float(a_score[i]) - float(b_score[j])))
    return pairs, len(a_box) + len(b_box), corner, score


def reading_boxes(answer: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes = answer["boxes"]
    return (np.array([b["box"] for b in boxes], float).reshape(-1, 4), np.array([b["score"] for b in boxes], float),
            np.array([b["label"] for b in boxes], object))


def single_parity(onnx: Any, graph: Any, images: list[np.ndarray]) -> dict[str, Any]:
    """A graph of one picture a run whose outputs are boxes: per picture, every box of the model
    (from its own minimum score) matched across the two runtimes."""
    import torch

    from fishbear.engine.deploy.standalone import prepare

    pairs = total = 0
    corner = score = 0.0
    for image in images:
        x = prepare(image, onnx.meta)[None]
        size = np.array([image.shape[:2]], dtype=np.int64)
        got = onnx.run(x, size)
        with torch.no_grad():
            want = [t.numpy() for t in graph(torch.from_numpy(x), torch.from_numpy(size))]
        found = matched_boxes((got["boxes"], got["scores"], got["labels"]), tuple(want))
        pairs, total = pairs + found[0], total + found[1]
        corner, score = max(corner, found[2]), max(score, found[3])
    matched = 2 * pairs / total if total else 1.0
    return {"outputs": {"boxes": {"max_abs": corner, "max_rel": 0.0, "limit": BOX_PX},
                        "scores": {"max_abs": score, "max_rel": 0.0}},
            "batch": 1, "batch_vs_single_max_abs": 0.0, "boxes_matched": matched, "boxes": total / 2}


def box_maps(export_dir: Path, graph: Any, files: list[Path], samples: list[Any], classes: list[str],
             resamples: int = 200, seed: int = 0) -> dict[str, Any]:
    """A detector's COCO mAP@0.5 and mAP@[.5:.95] on the test pictures from both runtimes' raw
    boxes (every box from the model's minimum score: the whole precision-recall curve), each with a
    seeded bootstrap 95% interval over pictures, and the difference on the same resamples."""
    import torch

    from fishbear.engine.deploy.standalone import OnnxPredictor, load_rgb, prepare
    from fishbear.reports.metrics import BoxMAP

    onnx = OnnxPredictor(export_dir)
    sides: dict[str, list[dict[str, torch.Tensor]]] = {"checkpoint": [], "export": []}
    truth = []
    for path, sample in zip(files, samples):
        image = load_rgb(path)
        x, size = prepare(image, onnx.meta)[None], np.array([image.shape[:2]], dtype=np.int64)
        got = onnx.run(x, size)
        with torch.no_grad():
            want = [t.numpy() for t in graph(torch.from_numpy(x), torch.from_numpy(size))]
        for side, (boxes, scores, labels) in (("export", (got["boxes"], got["scores"], got["labels"])),
                                              ("checkpoint", want)):
            sides[side].append({"boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                "scores": torch.as_tensor(scores, dtype=torch.float32),
                                "labels": torch.as_tensor(labels, dtype=torch.int64)})
        truth.append({"boxes": torch.as_tensor(np.asarray(sample.target.xyxy, np.float32)).reshape(-1, 4),
                      "labels": torch.as_tensor([classes.index(c) for c in sample.target.labels], dtype=torch.int64)})

    def scored(side: str, picked: np.ndarray) -> tuple[float, float]:
        metric = BoxMAP()
        metric.update([sides[side][i] for i in picked], [truth[i] for i in picked])
        found = metric.compute()
        return float(found["map_50"]), float(found["map"])

    everything = np.arange(len(truth))
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(truth), len(truth)) for _ in range(resamples)]
    out: dict[str, Any] = {"pictures": len(truth), "resamples": resamples}
    boot = {side: np.array([scored(side, d) for d in draws]) for side in sides}
    for side in sides:
        map50, map_all = scored(side, everything)
        low, high = np.percentile(boot[side], [2.5, 97.5], axis=0)
        out[side] = {"map_50": map50, "map_50_low": float(low[0]), "map_50_high": float(high[0]),
                     "map": map_all, "map_low": float(low[1]), "map_high": float(high[1])}
    gap = boot["export"] - boot["checkpoint"]
    out["difference_map_50"] = out["export"]["map_50"] - out["checkpoint"]["map_50"]
    out["difference_map_50_interval"] = [float(v) for v in np.percentile(gap[:, 0], [2.5, 97.5])]
    return out
