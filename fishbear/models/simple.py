"""Small networks trained from scratch: the default CNN and an MLP baseline."""

from __future__ import annotations

import torch
from torch import nn

from fishbear.models.base import Network, PretrainedCfg
from fishbear.models.heads import classifier_head


def _conv_bn(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class ConvNet(Network):
    """A small VGG-style CNN: fast to train from scratch on two CPU cores.

    The stem convolves at full resolution; each stage max-pools, then convolves with twice the
    channels. The default ``max`` head takes the global maximum of each channel: evidence such as
    a corner counts wherever it is, which learns ``shapes`` several times faster than averaging
    (measured: 92% vs 55% validation accuracy after 4 epochs). Any input of 2**stages pixels or
    more works.
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 128, 256),
                 head: str = "max", dropout: float = 0.0, in_channels: int = 3) -> None:
        super().__init__()
        self.pretrained_cfg = PretrainedCfg(arch="convnet")
        widths = tuple(int(w) for w in widths)
        self.stem = nn.Sequential(*_conv_bn(in_channels, widths[0], 1))
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:]), start=1):
            self.add_module(f"stage{i}", nn.Sequential(nn.MaxPool2d(2), *_conv_bn(cin, cout, 1)))
        self.classifier = classifier_head(widths[-1], num_classes, head, dropout)


class MLP(Network):
    """Fully connected baseline on raw pixels; its input layer is sized from ``image_size``."""

    def __init__(self, num_classes: int, image_size: int, hidden: tuple[int, ...] = (512, 256),
                 dropout: float = 0.2, in_channels: int = 3) -> None:
        super().__init__()
        self.pretrained_cfg = PretrainedCfg(arch="mlp")
        self.image_size = int(image_size)
        self.in_channels = in_channels
        width = in_channels * self.image_size * self.image_size
        for i, units in enumerate(hidden, start=1):
            layers: list[nn.Module] = [nn.Linear(width, int(units)), nn.BatchNorm1d(int(units)),
                                       nn.ReLU(inplace=True), nn.Dropout(dropout)]
            if i == 1:
                layers.insert(0, nn.Flatten())
            self.add_module(f"hidden{i}", nn.Sequential(*layers))
            width = int(units)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"MLP built for {expected} inputs got {tuple(x.shape[1:])}; "
                "set model.image_size to the data's image size (model=mlp uses ${data.image_size})."
            )
        return super().forward(x)
