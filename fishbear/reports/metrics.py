"""Metrics torchmetrics does not ship in the form these problems are scored by.

Each is a ``torchmetrics.Metric`` (summed states, so they work per step, per epoch and across
DDP processes), plus the plain function behind it, which reports and threshold tuning reuse so a
figure is computed one way everywhere.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.detection import MeanAveragePrecision


def sample_fbeta(predicted: torch.Tensor, target: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """F-beta of each sample's predicted tag set against its true set (N x T booleans -> N).

    Kaggle's Planet score is the mean of these (scikit-learn's ``average='samples'``). A sample
    with no true and no predicted tag scores 1 (nothing to find, nothing claimed).
    """
    predicted, target = predicted.bool(), target.bool()
    tp = (predicted & target).sum(dim=1).float()
    fp = (predicted & ~target).sum(dim=1).float()
    fn = (~predicted & target).sum(dim=1).float()
    b2 = beta * beta
    denominator = (1 + b2) * tp + b2 * fn + fp
    return torch.where(denominator > 0, (1 + b2) * tp / denominator.clamp(min=1e-12), torch.ones_like(tp))


class SampleFBeta(Metric):
    """Sample-averaged F-beta of tags above ``threshold`` (probabilities in, after the sigmoid)."""

    higher_is_better = True
    full_state_update = False

    def __init__(self, beta: float = 2.0, threshold: float = 0.2) -> None:
        super().__init__()
        self.beta, self.threshold = float(beta), float(threshold)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probabilities: torch.Tensor, target: torch.Tensor) -> None:
        scores = sample_fbeta(probabilities > self.threshold, target > 0.5, self.beta)
        self.total += scores.double().sum()
        self.count += scores.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp(min=1)).float()


def iou_from_confusion(matrix: torch.Tensor) -> torch.Tensor:
    """Per-class intersection over union from a confusion matrix (rows actual); NaN for a class
    that is neither present nor predicted, so means skip it instead of counting it as 0 or 1."""
    matrix = matrix.double()
    intersection = matrix.diagonal()
    union = matrix.sum(0) + matrix.sum(1) - intersection
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.full_like(union, float("nan")))


def pixel_confusion(predicted: torch.Tensor, target: torch.Tensor, num_classes: int,
                    ignore_index: int | None = None) -> torch.Tensor:
    """Confusion matrix (rows actual, columns predicted) of class-index masks; void pixels and
    values outside the classes are left out."""
    predicted, target = predicted.flatten().long(), target.flatten().long()
    keep = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        keep &= target != ignore_index
    index = target[keep] * num_classes + predicted[keep]
    return torch.bincount(index, minlength=num_classes ** 2).view(num_classes, num_classes)


def segmentation_scores(matrix: torch.Tensor, ignore_index: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Pixel accuracy and IoU per scored class (every class but void) from a pixel confusion
    matrix, and the scored classes' indices."""
    scored = [c for c in range(len(matrix)) if c != ignore_index]
    kept = matrix[scored][:, scored]
    accuracy = kept.diagonal().sum() / kept.sum().clamp(min=1)
    return accuracy, iou_from_confusion(kept), scored


class SegmentationScores(Metric):
    """A pixel confusion matrix, void pixels left out; read as pixel accuracy (fastai's
    ``acc_camvid``), mean IoU over the classes that occur, or IoU per class."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int, ignore_index: int | None = None, output: str = "miou") -> None:
        super().__init__()
        if output not in ("miou", "acc", "iou"):
            raise ValueError(f"output={output!r}; use miou, acc or iou")
        self.num_classes, self.ignore_index, self.output = int(num_classes), ignore_index, output
        self.add_state("matrix", default=torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        self.matrix += pixel_confusion(logits.argmax(dim=1), target, self.num_classes, self.ignore_index)

    def compute(self) -> torch.Tensor:
        accuracy, iou, _ = segmentation_scores(self.matrix, self.ignore_index)
        if self.output == "acc":
            return accuracy.float()
        return iou.float() if self.output == "iou" else iou.nanmean().float()


def pixel_distances(predicted: torch.Tensor, target: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Distances in original-image pixels between N x 2K point outputs and targets in [-1, 1];
    ``sizes`` holds each image's original ``(height, width)``. Returns N x K."""
    scale = sizes.flip(-1).to(predicted.dtype).unsqueeze(1) / 2  # (width, height) / 2 per image
    difference = (predicted.float() - target.float()).view(len(predicted), -1, 2) * scale
    return difference.norm(dim=-1)


class MeanPixelDistance(Metric):
    """Mean distance between predicted and true points, in pixels of the original images."""

    higher_is_better = False
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, predicted: torch.Tensor, target: torch.Tensor, sizes: torch.Tensor) -> None:
        distances = pixel_distances(predicted, target, sizes)
        self.total += distances.double().sum()
        self.count += distances.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp(min=1)).float()


def box_map(**kwargs: Any) -> MeanAveragePrecision:
    """torchmetrics' COCO evaluation of ``xyxy`` pixel boxes in full (the report's per-class AP and
    precision-recall arrays)."""
    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", **kwargs)


class BoxMAP(MeanAveragePrecision):
    """mAP@[.5:.95], mAP@0.5, mAP@0.75 and recall at 100 boxes: the four figures detection papers
    and the COCO leaderboard report, of the dozen torchmetrics' COCO evaluation computes (boxes
    as ``xyxy`` pixels, pycocotools as backend)."""

    KEPT = ("map", "map_50", "map_75", "mar_100")

    def compute(self) -> dict[str, torch.Tensor]:
        out = super().compute()
        return {key: out[key] for key in self.KEPT}


def match_boxes(prediction: dict[str, torch.Tensor], target: dict[str, torch.Tensor], num_classes: int,
                iou: float = 0.5, score: float = 0.5) -> torch.Tensor:
    """Per class, the true positives, false positives and missed boxes of one image (C x 3) when
    every predicted box scored ``score`` or more counts: the figures behind "it found 9 of 10 fish
    and boxed one rock". Greedy matching, highest score first, as the COCO evaluation does."""
    from torchvision.ops import box_iou

    counts = torch.zeros(num_classes, 3, dtype=torch.long)
    keep = prediction["scores"] >= score
    boxes, labels, scores = prediction["boxes"][keep], prediction["labels"][keep], prediction["scores"][keep]
    for c in range(num_classes):
        mine, truth = boxes[labels == c][scores[labels == c].argsort(descending=True)], target["boxes"][target["labels"] == c]
        taken = torch.zeros(len(truth), dtype=torch.bool)
        overlaps = box_iou(mine, truth) if len(mine) and len(truth) else torch.zeros(len(mine), len(truth))
        for row in overlaps:
            row = row.masked_fill(taken, -1.0)
            if len(row) and row.max() >= iou:
                taken[row.argmax()] = True
                counts[c, 0] += 1
            else:
                counts[c, 1] += 1
        counts[c, 2] = int((~taken).sum())
    return counts
