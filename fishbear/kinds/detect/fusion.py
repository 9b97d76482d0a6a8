"""Weighted box fusion of several views' boxes (Solovyev et al. 2021, the merge test-time
augmentation of detectors uses): boxes of one class that overlap are one object, whose corners are
the score-weighted mean of its boxes and whose score is their sum over the number of views, so an
object only one view found keeps half its score where NMS would keep it whole.

Written from the paper, on tensors (no Python loop over boxes): clusters are seeded by class-wise
NMS over the union of the views' boxes, and every box joins the highest-scored seed of its class it
overlaps. NMS's output size is known only on the host, so on a GPU each picture costs one sync,
as the detector's own NMS does.
"""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms, box_iou


def fuse_boxes(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, views: int,
               iou: float = 0.55) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One picture's boxes (N x 4 corners), scores and labels, pooled from ``views`` views, fused
    into one box per object: the fused boxes, scores and labels, best first."""
    if boxes.shape[0] == 0:
        return boxes, scores, labels
    seeds = batched_nms(boxes, scores, labels, iou)  # highest score first
    overlap = box_iou(boxes[seeds], boxes) > iou
    overlap &= labels[seeds][:, None] == labels[None, :]
    overlap[torch.arange(len(seeds), device=boxes.device), seeds] = True  # a seed joins itself at least
    cluster = overlap.float().argmax(dim=0)  # the first (best) seed each box overlaps
    weight = scores.float()
    total = torch.zeros(len(seeds), device=boxes.device).index_add_(0, cluster, weight)
    corners = torch.zeros(len(seeds), 4, device=boxes.device).index_add_(0, cluster, boxes.float() * weight[:, None])
    fused = (corners / total.clamp_min(1e-12)[:, None]).to(boxes.dtype)
    fused_scores = (total / views).clamp(max=1.0).to(scores.dtype)
    order = fused_scores.argsort(descending=True)
    return fused[order], fused_scores[order], labels[seeds][order]
