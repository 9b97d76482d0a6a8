"""``classifier``: any backbone's body (:func:`fishbear.models.backbones.body`) followed by a head
sized for the data. Model configs and checkpoints name it by this module's path
(``fishbear.models.torchvision_nets.classifier``), so it stays here.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

from torch import nn

from fishbear.models.backbones import body
from fishbear.models.base import Network, PretrainedCfg
from fishbear.models.heads import classifier_head


class GroupedNetwork(Network):
    """Named body groups followed by ``classifier`` (the head)."""

    def __init__(self, groups: OrderedDict[str, nn.Module], classifier: nn.Module, cfg: PretrainedCfg) -> None:
        super().__init__()
        for name, module in groups.items():
            self.add_module(name, module)
        self.classifier = classifier
        self.pretrained_cfg = cfg


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
