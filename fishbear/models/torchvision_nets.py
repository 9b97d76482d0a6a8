"""torchvision backbones regrouped into named layer groups with a head sized for the data.

The torchvision model is built first (with its weights, through torchvision's own weights API and
cache), then its modules are moved, not copied, into groups; so pretrained weights load exactly as
torchvision ships them and nothing depends on hand-computed feature sizes.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from fishbear.core.errors import FishbearError
from fishbear.core.normalization import IMAGENET_MEAN, IMAGENET_STD
from fishbear.models.base import Network, PretrainedCfg
from fishbear.models.heads import classifier_head


class WeightsUnavailableError(FishbearError):
    """Pretrained weights could not be downloaded or read."""


class GroupedNetwork(Network):
    """Named body groups followed by ``classifier`` (the head)."""

    def __init__(self, groups: OrderedDict[str, nn.Module], classifier: nn.Module, cfg: PretrainedCfg) -> None:
        super().__init__()
        for name, module in groups.items():
            self.add_module(name, module)
        self.classifier = classifier
        self.pretrained_cfg = cfg


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


def convnet_body(arch: str = "convnet", pretrained: bool = False,
                 weights: str = "DEFAULT") -> tuple[OrderedDict[str, nn.Module], int, PretrainedCfg]:
    """fishbear's small from-scratch ConvNet (no weights): a fast encoder for CPU runs and tests."""
    from fishbear.models.simple import ConvNet

    if pretrained:
        raise FishbearError("convnet has no pretrained weights; set model.pretrained=false or pick a torchvision backbone")
    net = ConvNet(1)
    groups = OrderedDict((name, module) for name, module in net.layer_groups().items() if name != "classifier")
    return groups, net.stage4[-3].out_channels, net.pretrained_cfg


def body(arch: str, pretrained: bool = False,
         weights: str = "DEFAULT") -> tuple[OrderedDict[str, nn.Module], int, PretrainedCfg]:
    """Any supported backbone by name (``resnet34``, ``vgg16``, ``mobilenet_v2``, ``convnet``)."""
    if arch == "convnet":
        return convnet_body(arch, pretrained, weights)
    for prefix, builder in (("resnet", resnet_body), ("vgg", vgg_body), ("mobilenet_v2", mobilenet_v2_body)):
        if arch.startswith(prefix):
            return builder(arch, pretrained, weights)
    raise FishbearError(f"no layer groups are defined for {arch!r}; use a resnet*, vgg* or mobilenet_v2 backbone")


def classifier(num_classes: int, arch: str = "resnet18", pretrained: bool = False, weights: str = "DEFAULT",
               head: str = "fastai", dropout: float = 0.5, y_range: tuple[float, float] | None = None) -> GroupedNetwork:
    """A backbone's body groups followed by a new head sized for the data. ``y_range`` squashes
    the outputs into that interval (fastai's ``y_range``, for regression such as points in [-1, 1])."""
    groups, channels, cfg = body(arch, pretrained, weights)
    return GroupedNetwork(groups, classifier_head(channels, num_classes, head, dropout, y_range), cfg)


# names the model configs used before `classifier`: checkpoints written then still load
resnet = partial(classifier, arch="resnet18")
vgg = partial(classifier, arch="vgg16")
mobilenet_v2 = partial(classifier, arch="mobilenet_v2")
