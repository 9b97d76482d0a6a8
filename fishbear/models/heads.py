"""Classifier heads that size themselves from the body's channels, for any input size."""

from __future__ import annotations

import torch
from torch import nn


class GlobalMaxPool2d(nn.Module):
    """The largest value of each channel, N x C x 1 x 1: ``AdaptiveMaxPool2d(1)`` as a reduction,
    which every ONNX exporter writes (torch 2.11's has no function for ``adaptive_max_pool2d``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3), keepdim=True)


class AdaptiveConcatPool2d(nn.Module):
    """Average and max pooling side by side: fastai's pooling, richer than average alone."""

    def __init__(self) -> None:
        super().__init__()
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.max = GlobalMaxPool2d()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.max(x), self.avg(x)], dim=1)


class SigmoidRange(nn.Module):
    """Squash outputs into ``[low, high]`` (fastai's ``y_range``): a regression head starts inside
    the target range and cannot wander far outside it."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = float(low), float(high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) * (self.high - self.low) + self.low


def classifier_head(in_channels: int, num_classes: int, style: str = "fastai", dropout: float = 0.5,
                    y_range: tuple[float, float] | None = None, hidden: int = 512, pooled: bool = False) -> nn.Sequential:
    """``fastai``: concat-pool, BN, dropout, linear, ReLU, BN, dropout, linear (``create_head``);
    ``linear``: global average pool and one linear layer; ``max``: global max pool and one linear layer.
    ``pooled``: the body already gives one vector per image (a timm model pooled its own way, a
    ViT's class token), so the head starts after the pooling."""
    if style not in ("fastai", "linear", "max"):
        raise ValueError(f"unknown head style {style!r}; use 'fastai', 'linear' or 'max'")
    if style == "fastai":
        width = in_channels if pooled else 2 * in_channels
        layers = [] if pooled else [AdaptiveConcatPool2d(), nn.Flatten()]
        layers += [nn.BatchNorm1d(width), nn.Dropout(dropout / 2), nn.Linear(width, hidden, bias=False),
                   nn.ReLU(inplace=True), nn.BatchNorm1d(hidden), nn.Dropout(dropout), nn.Linear(hidden, num_classes)]
    else:
        pool = [] if pooled else [nn.AdaptiveAvgPool2d(1) if style == "linear" else GlobalMaxPool2d(), nn.Flatten()]
        layers = [*pool, nn.Dropout(dropout), nn.Linear(in_channels, num_classes)]
    if y_range is not None:
        layers.append(SigmoidRange(*y_range))
    return nn.Sequential(*layers)
