"""Albumentations pipelines per stage and task kind.

One function builds every pipeline so that all kinds share the same resize, augmentation and
normalisation; a kind only adds the targets albumentations must move with the image (masks,
keypoints, boxes), which later task kinds register in ``KIND_TARGETS``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import, we run offline

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
from albumentations.pytorch import ToTensorV2  # noqa: E402

from fishbear.normalization import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402


# Extra arguments of ``A.Compose`` per task kind: what must be transformed together with the image.
KIND_TARGETS: dict[str, dict[str, Any]] = {"classify": {}}


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation, fastai's ``aug_transforms`` in albumentations terms.

    ``crop_scale`` is the area range of the random resized crop (``[1, 1]`` turns cropping off),
    ``rotate`` the maximum rotation in degrees, ``lighting`` the brightness/contrast change,
    ``blur`` the probability of a light Gaussian blur.
    """

    hflip: bool = True
    vflip: bool = False
    crop_scale: tuple[float, float] = (0.35, 1.0)
    rotate: float = 10.0
    lighting: float = 0.2
    saturation: float = 0.1
    blur: float = 0.1


def build_transforms(
    stage: str,
    image_size: int,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    augment: Augment | None = None,
    kind: str = "classify",
) -> A.Compose:
    """Pipeline for ``stage`` (``train`` augments; ``valid``, ``test``, ``predict`` only resize).

    Evaluation resizes the short side and centre-crops, as torchvision's and fastai's defaults do,
    so non-square photographs keep their aspect ratio.
    """
    size = int(image_size)
    ops: list[A.BasicTransform] = []
    if stage == "train" and augment is not None:
        low, high = augment.crop_scale
        if (low, high) == (1.0, 1.0):
            ops += [A.SmallestMaxSize(max_size=size), A.CenterCrop(size, size)]
        else:
            ops.append(A.RandomResizedCrop(size=(size, size), scale=(low, high), ratio=(3 / 4, 4 / 3)))
        if augment.hflip:
            ops.append(A.HorizontalFlip(p=0.5))
        if augment.vflip:
            ops.append(A.VerticalFlip(p=0.5))
        if augment.rotate:
            ops.append(A.Affine(rotate=(-augment.rotate, augment.rotate), border_mode=cv2.BORDER_REPLICATE, p=0.75))
        if augment.lighting or augment.saturation:
            ops.append(A.ColorJitter(brightness=augment.lighting, contrast=augment.lighting,
                                     saturation=augment.saturation, hue=0.0, p=0.75))
        if augment.blur:
            ops.append(A.GaussianBlur(sigma_limit=(0.1, 1.0), p=augment.blur))
    else:
        ops += [A.SmallestMaxSize(max_size=size), A.CenterCrop(size, size)]
    ops += [A.Normalize(mean=tuple(mean), std=tuple(std)), ToTensorV2()]
    return A.Compose(ops, **KIND_TARGETS[kind])


def denormalize(images: Any, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """Undo ``Normalize`` on an N x C x H x W tensor, to show batches as the model sees them."""
    import torch

    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images * s + m).clamp(0, 1)
