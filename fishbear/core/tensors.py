"""Tensors and the numbers every layer shares: the ImageNet statistics that pretrained weights
expect and data normalises with, and results moved off the device (every kind and the engine)."""

from __future__ import annotations

from typing import Any

import torch

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def to_cpu(value: Any) -> Any:
    """Tensors, or lists, tuples and dicts of them (boxes: a list of dicts), detached on the CPU
    with floats as float32 (bf16 outputs of mixed precision have no numpy form)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {key: to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(item) for item in value)
    return value
