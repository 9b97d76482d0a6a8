"""U-Net on a torchvision backbone: the classification body as encoder, a decoder sized from it.

The encoder is the same body (and the same pretrained weights path) as ``model=resnet34``; every
body group's output but the last is a skip connection. Channel counts and resolutions are found
by passing a small probe image through the encoder once, so the decoder fits any backbone
without tables of feature sizes. Upsampling goes to each skip's exact size, so any input size
divisible by 32 comes out at input resolution.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from fishbear.models.backbones import body
from fishbear.models.base import Network


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class UpBlock(nn.Module):
    """Upsample to the skip's size, join it (batch-normalised, as fastai's ``UnetBlock``), two convs."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.skip_bn = nn.BatchNorm2d(skip_channels)
        self.convs = nn.Sequential(conv_bn_relu(in_channels + skip_channels, out_channels),
                                   conv_bn_relu(out_channels, out_channels))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(torch.cat([x, self.skip_bn(skip)], dim=1))


class Encoder(nn.Module):
    """The backbone's body groups; returns every group's output."""

    def __init__(self, groups: OrderedDict[str, nn.Module]) -> None:
        super().__init__()
        for name, group in groups.items():
            self.add_module(name, group)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for group in self.children():
            x = group(x)
            features.append(x)
        return features


class Decoder(nn.Module):
    def __init__(self, channels: list[int], min_width: int = 32, max_width: int = 512) -> None:
        """``channels``: the encoder's output channels per group, input side first. The middle
        block is capped at ``max_width`` (MobileNetV2 ends in 1280 channels: uncapped, its middle
        alone would hold 29M parameters)."""
        super().__init__()
        middle = min(channels[-1], max_width)
        self.middle = nn.Sequential(conv_bn_relu(channels[-1], middle), conv_bn_relu(middle, middle))
        blocks, width = [], middle
        for skip in reversed(channels[:-1]):
            out = max(skip, min_width)
            blocks.append(UpBlock(width, skip, out))
            width = out
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = width

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.middle(features[-1])
        for block, skip in zip(self.blocks, reversed(features[:-1])):
            x = block(x, skip)
        return x


class SegmentationHead(nn.Module):
    """Back to input resolution, joined with the input image itself (fastai's ``last_cross``),
    one conv block and a 1x1 convolution to the class scores."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.block = conv_bn_relu(in_channels + 3, width)
        self.classify = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return self.classify(self.block(torch.cat([x, image], dim=1)))


class UNet(Network):
    """Layer groups ``encoder`` (the backbone body, pretrained when asked), ``decoder`` and ``head``;
    fine-tuning freezes the encoder alone and ``lr_spread: body_head`` slows only the encoder."""

    output = "dense"

    def __init__(self, num_classes: int, encoder: str = "resnet34", pretrained: bool = False,
                 weights: str = "DEFAULT", min_width: int = 32) -> None:
        super().__init__()
        groups, _, cfg = body(encoder, pretrained, weights)
        self.encoder = Encoder(groups)
        self.pretrained_cfg = cfg
        self.encoder.eval()  # the probe must not touch pretrained batch-norm statistics
        with torch.no_grad():
            channels = [f.shape[1] for f in self.encoder(torch.zeros(1, 3, 64, 64))]
        self.encoder.train()
        self.decoder = Decoder(channels, min_width)
        self.segmentation_head = SegmentationHead(self.decoder.out_channels, num_classes, min_width)

    def layer_groups(self) -> OrderedDict[str, nn.Module]:
        return OrderedDict(encoder=self.encoder, decoder=self.decoder, head=self.segmentation_head)

    def body_groups(self) -> list[str]:
        return ["encoder"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmentation_head(self.decoder(self.encoder(x)), x)
