"""How pixels reach a model: the host's part ends at uint8, the device's part begins with floats.

A :class:`Feed` says everything a model was fed with: the size and fit (done on the host, on
uint8 pictures, by :func:`fishbear.data.transforms.build_transforms`), the named preprocessing, and
the normalisation, which :class:`Normalize` does on the device after the batch has travelled. So a
batch crosses from host to device as uint8, a quarter of the bytes of float32 (77 MB for 128
pictures of 224 px as floats, 19 MB as bytes), and the division by 255, the mean and the spread run
where the arithmetic is cheap. The checkpoint carries the feed (``ModelMeta.feed``); the data
module's after-transfer step, the predictor, the export graph and the batch pictures all use the
one :class:`Normalize`, so no two places can disagree on the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from fishbear.core.geometry import image_size_of
from fishbear.core.tensors import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class Feed:
    """What a model is fed: ``image_size`` (one side or ``(height, width)``), the ``resize`` fit
    (None: the kind's), the ``preprocess`` steps, and the ``mean`` and ``std`` it normalises with."""

    image_size: int | tuple[int, int] = 64
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize: str | None = None
    preprocess: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", image_size_of(self.image_size))
        object.__setattr__(self, "preprocess", tuple(self.preprocess))

    def normalize(self) -> Normalize:
        return Normalize(self.mean, self.std)


class Normalize(torch.nn.Module):
    """``(pixels - 255 * mean) / (255 * std)`` per channel: uint8 (or 0-255 float) N x 3 x H x W
    pictures to the network's input, in float32, keeping the batch's memory format (a
    channels-last batch stays channels-last). The same arithmetic as albumentations' ``Normalize``
    (a multiplication by the reciprocal), which the loaders used to do on the host."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        mean_t = torch.tensor([float(m) for m in mean], dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor([float(s) for s in std], dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("shift", mean_t * 255.0, persistent=False)
        self.register_buffer("scale", torch.reciprocal(std_t * 255.0), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images.to(torch.float32) - self.shift) * self.scale

    def undo(self, images: torch.Tensor) -> torch.Tensor:
        """The normalised pictures back in [0, 1], to show a batch as the model saw it."""
        return (images.float() / self.scale.to(images.device) + self.shift.to(images.device)).div(255.0).clamp(0, 1)


def to_device_images(images: Any, normalize: Normalize) -> Any:
    """A batch's ``image`` entry as the network takes it: uint8 pictures (a tensor, or a list of
    them for a detector) normalised by ``normalize`` (moved to their device once); floats that were
    normalised already (a stand-in data module's) pass as they are."""
    if isinstance(images, (list, tuple)):
        return type(images)(to_device_images(image, normalize) for image in images)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        return images
    if normalize.shift.device != images.device:
        normalize.to(images.device)
    squeeze = images.ndim == 3
    out = normalize(images.unsqueeze(0) if squeeze else images)
    return out[0] if squeeze else out
