"""Every backbone's body by name: the one entry (:func:`body`) that the classifier, the U-Net and
the detectors build on. A backbone family is its module of body builders and one line in
:data:`BODIES` (the name's prefix and the builder)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import nn

from fishbear.core.errors import FishbearError
from fishbear.models.base import PretrainedCfg
from fishbear.models.timm_nets import PREFIX as TIMM
from fishbear.models.timm_nets import timm_body
from fishbear.models.torchvision_bodies import mobilenet_v2_body, resnet_body, vgg_body

Body = tuple[OrderedDict[str, nn.Module], int, PretrainedCfg]


def convnet_body(arch: str = "convnet", pretrained: bool = False,
                 weights: str = "DEFAULT") -> tuple[OrderedDict[str, nn.Module], int, PretrainedCfg]:
    """fishbear's small from-scratch ConvNet (no weights): a fast encoder for CPU runs and tests."""
    from fishbear.models.simple import ConvNet

    if pretrained:
        raise FishbearError("convnet has no pretrained weights; set model.pretrained=false or pick a torchvision backbone")
    net = ConvNet(1)
    groups = OrderedDict((name, module) for name, module in net.layer_groups().items() if name != "classifier")
    return groups, net.stage4[-3].out_channels, net.pretrained_cfg


# a backbone name's prefix -> the builder of its body: (layer groups, the last group's channels, its pretrained_cfg)
BODIES: dict[str, Callable[[str, bool, str], Body]] = {
    "convnet": convnet_body, "resnet": resnet_body, "vgg": vgg_body, "mobilenet_v2": mobilenet_v2_body, TIMM: timm_body,
}


def body(arch: str, pretrained: bool = False, weights: str = "DEFAULT") -> Body:
    """Any supported backbone by name (``resnet34``, ``vgg16``, ``mobilenet_v2``, ``convnet``,
    ``timm/<architecture>``)."""
    for prefix, builder in BODIES.items():
        if arch.startswith(prefix):
            return builder(arch, pretrained, weights)
    raise FishbearError(f"no layer groups are defined for {arch!r}; "
                        f"use a resnet*, vgg*, mobilenet_v2, convnet or timm/<name> backbone")
