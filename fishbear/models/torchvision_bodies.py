"""torchvision backbones regrouped into named layer groups (the bodies; a head is added by
:func:`fishbear.models.torchvision_nets.classifier`, a decoder by the U-Net, a detector's neck by
:mod:`fishbear.models.detection`).

The torchvision model is built first (with its weights, through torchvision's own weights API and
cache), then its modules are moved, not copied, into groups; so pretrained weights load exactly as
torchvision ships them and nothing depends on hand-computed feature sizes.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from fishbear.core.errors import FishbearError
from fishbear.core.tensors import IMAGENET_MEAN, IMAGENET_STD
from fishbear.models.base import PretrainedCfg


class WeightsUnavailableError(FishbearError):
    """Pretrained weights could not be downloaded or read."""


def build_torchvision(arch: str, pretrained: bool, weights: str = "DEFAULT",
                      **kwargs: Any) -> tuple[nn.Module, PretrainedCfg]:
    """Build ``arch`` from torchvision, with its weights (ImageNet; COCO for detectors) when
    ``pretrained``; ``kwargs`` go to torchvision's builder.

    Offline, the error names the weights file and the folder torchvision looks in, so the user can
    put the file there by hand.
    """
    try:
        builder = torchvision.models.get_model_builder(arch)
    except ValueError:
        known = ", ".join(sorted(torchvision.models.list_models(torchvision.models)))
        raise FishbearError(f"torchvision has no model {arch!r}. Known: {known}") from None
    if not pretrained:
        return builder(weights=None, **kwargs), PretrainedCfg(arch=arch)
    enum = torchvision.models.get_model_weights(arch)
    try:
        chosen = enum[weights] if weights != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise FishbearError(
            f"{arch} has no weights {weights!r}; choose one of: DEFAULT, {', '.join(w.name for w in enum)}"
        ) from None
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    filename = chosen.url.rsplit("/", 1)[-1]
    try:
        model = builder(weights=chosen, **kwargs)
    except Exception as err:  # urllib, SSL, hash and unpickling errors all mean the same to the user
        raise WeightsUnavailableError(
            f"Could not load the pretrained weights of {arch} ({chosen}) from {chosen.url}: "
            f"{type(err).__name__}: {err}. Download that file on a machine with internet and put it at "
            f"{folder / filename} (the folder follows $TORCH_HOME), then run again; "
            f"or set model.pretrained=false to train from scratch."
        ) from None
    transform = chosen.transforms()  # detection presets only rescale: their models normalise with ImageNet's
    cfg = PretrainedCfg(arch=arch, weights=str(chosen), mean=tuple(getattr(transform, "mean", IMAGENET_MEAN)),
                        std=tuple(getattr(transform, "std", IMAGENET_STD)),
                        extra={"file": filename, "crop_size": getattr(transform, "crop_size", None)})
    return model, cfg


def resnet_body(arch: str = "resnet18", pretrained: bool = False,
                weights: str = "DEFAULT") -> tuple[OrderedDict[str, nn.Module], int, PretrainedCfg]:
    """ResNet body in groups ``stem, stage1..stage4``; returns the groups, the last group's
    channels and where the weights came from."""
    model, cfg = build_torchvision(arch, pretrained, weights)
    groups = OrderedDict(
        stem=nn.Sequential(OrderedDict(conv1=model.conv1, bn1=model.bn1, relu=model.relu, maxpool=model.maxpool)),
        stage1=model.layer1, stage2=model.layer2, stage3=model.layer3, stage4=model.layer4,
    )
    return groups, model.fc.in_features, cfg


def vgg_body(arch: str = "vgg16", pretrained: bool = False,
             weights: str = "DEFAULT") -> tuple[OrderedDict[str, nn.Module], int, PretrainedCfg]:
    """VGG body in groups ``block1..block5``, one per max-pool."""
    model, cfg = build_torchvision(arch, pretrained, weights)
    groups: OrderedDict[str, nn.Module] = OrderedDict()
    block: list[nn.Module] = []
    channels = 3
    for layer in model.features:
        block.append(layer)
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
        if isinstance(layer, nn.MaxPool2d):
            groups[f"block{len(groups) + 1}"] = nn.Sequential(*block)
            block = []
    if block:
        groups[f"block{len(groups) + 1}"] = nn.Sequential(*block)
    return groups, channels, cfg


def _downsamples(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) and max(m.stride) > 1 for m in module.modules())


def split_at_strides(blocks: nn.Sequential, names: list[str]) -> OrderedDict[str, nn.Module]:
    """Group consecutive blocks, starting a new group at each block after the first that halves
    the resolution: layer groups follow the network's own structure, not indices."""
    groups: list[list[nn.Module]] = []
    for i, block in enumerate(blocks):
        if i == 0 or _downsamples(block):
            groups.append([])
        groups[-1].append(block)
    if len(groups) > len(names):
        raise ValueError(f"{len(groups)} resolution stages but only {len(names)} group names")
    return OrderedDict((name, nn.Sequential(*group)) for name, group in zip(names, groups))


def mobilenet_v2_body(arch: str = "mobilenet_v2", pretrained: bool = False,
                      weights: str = "DEFAULT") -> tuple[OrderedDict[str, nn.Module], int, PretrainedCfg]:
    """MobileNetV2 body in groups ``stem`` (stem and first block, 1/2 resolution) and
    ``stage1..stage4`` (1/4 ... 1/32)."""
    model, cfg = build_torchvision(arch, pretrained, weights)
    groups = split_at_strides(model.features, ["stem", "stage1", "stage2", "stage3", "stage4"])
    return groups, model.classifier[-1].in_features, cfg
