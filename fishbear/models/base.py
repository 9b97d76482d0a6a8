"""What every fishbear network offers besides ``forward``: its layer groups and its origin.

Freezing, unfreezing, discriminative learning rates and batch-norm handling are written once
against :meth:`Network.layer_groups`, so they work for every model. Groups are named modules in
input-to-output order (``stem``, ``stage1`` ... ``head``), found by name, never by index.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

from fishbear.normalization import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class PretrainedCfg:
    """One source of truth per model (as timm's ``pretrained_cfg``): where its weights come from
    and the input statistics they expect; the data module normalises with these."""

    arch: str
    weights: str | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    extra: dict = field(default_factory=dict)


class Network(nn.Module):
    """A plain ``nn.Module`` whose children are its layer groups, in order, the last one the head."""

    pretrained_cfg: PretrainedCfg

    def layer_groups(self) -> "OrderedDict[str, nn.Module]":
        return OrderedDict(self.named_children())

    def head(self) -> nn.Module:
        return next(reversed(self.layer_groups().values()))

    def body_groups(self) -> list[str]:
        return list(self.layer_groups())[:-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for group in self.layer_groups().values():
            x = group(x)
        return x
