"""Albumentations pipelines per stage and task kind, ending at uint8.

One function builds every pipeline so that all kinds share the same resize and augmentation; a
kind (``fishbear.kinds``) only adds what albumentations must move with the image (masks,
keypoints, boxes) and whether evaluation may crop. A pipeline hands over a 3 x H x W uint8
tensor: the normalisation happens after the batch has reached the model's device
(:class:`fishbear.data.feed.Normalize`), so a quarter of the bytes cross to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

from fishbear.core.errors import ConfigError
from fishbear.core.geometry import PAD_MASK, as_hw


class MovesWithImage(Protocol):
    """What a task kind (``fishbear.kinds``) tells the pipeline: how evaluation fits a picture
    (``eval_resize``) and what albumentations must move with the image (``compose_args``)."""

    eval_resize: str

    def compose_args(self) -> dict[str, Any]: ...

RESIZES = ("crop", "pad", "squish")


class Enhance(A.ImageOnlyTransform):
    """Grey-world white balance and CLAHE (``fishbear.data.video.enhance``): water that is greener
    or bluer by the hour looks alike. A model trained with it sees it at inference too (the
    checkpoint's ``preprocess``)."""

    def __init__(self, p: float = 1.0) -> None:
        super().__init__(p=p)

    def apply(self, img: Any, **params: Any) -> Any:
        from fishbear.data.video import enhance

        return enhance(img)


# what data.preprocess may name: applied to the whole picture, before any resize or augmentation,
# in training, evaluation and prediction alike
PREPROCESS: dict[str, type[A.ImageOnlyTransform]] = {"enhance": Enhance}


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation, fastai's ``aug_transforms`` in albumentations terms.

    ``crop_scale`` is the area range of the random resized crop (``[1, 1]`` turns cropping off),
    ``rotate`` the maximum rotation in degrees, ``zoom`` the largest zoom in (fastai's
    ``max_zoom``; 1: none), ``warp`` the perspective warp (fastai's ``max_warp``: corners moved by
    up to half this share of the side; 0: none), ``lighting`` the brightness/contrast change,
    ``blur`` the probability of a light Gaussian blur. The affine and lighting changes apply with
    probability 0.75, as fastai's ``p_affine`` and ``p_lighting``.
    """

    hflip: bool = True
    vflip: bool = False
    crop_scale: tuple[float, float] = (0.35, 1.0)
    rotate: float = 10.0
    zoom: float = 1.0
    warp: float = 0.0
    lighting: float = 0.2
    saturation: float = 0.1
    blur: float = 0.1


def build_transforms(
    stage: str,
    image_size: int | tuple[int, int] | list[int],
    augment: Augment | None = None,
    kind: MovesWithImage | None = None,
    resize: str | None = None,
    preprocess: tuple[str, ...] | list[str] = (),
) -> A.Compose:
    """Pipeline for ``stage`` (``train`` augments; ``valid``, ``test``, ``predict`` only resize);
    ``kind``: the task kind whose targets move with the image (None: none, photographs' crop);
    ``preprocess``: named steps (:data:`PREPROCESS`) applied first, in every stage.

    Classification evaluates on the short side resized and centre-cropped, as torchvision's and
    fastai's defaults do, so photographs keep their aspect ratio; kinds whose targets cover the
    whole frame (masks, points) resize the whole frame instead. ``resize`` overrides the kind's
    choice: ``crop``, ``squish``, or ``pad``: the whole picture scaled to fit inside the target
    and letterboxed with black (masks with ``PAD_MASK``, not scored), as the exercise's
    "square-padded" images are; objects at the frame's edge stay in view, and training uses the
    same fit (no random crop), so boxes, points and masks move with the image.
    """
    height, width = as_hw(image_size)
    resize = resize or (kind.eval_resize if kind is not None else "crop")
    if resize not in RESIZES:
        raise ConfigError(f"data.resize={resize!r}: use {', '.join(RESIZES)}.")
    if resize == "pad":
        fit: list[A.BasicTransform] = [A.LongestMaxSize(max_size_hw=(height, width)),
                                       A.PadIfNeeded(min_height=height, min_width=width, position="center",
                                                     border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=PAD_MASK)]
    elif resize == "squish":
        fit = [A.Resize(height, width)]
    else:
        # scaled until it covers height x width (the aspect kept), then the centre cut out: a
        # 600x336 video frame at [192, 336] keeps its whole width, not a 336-wide middle
        fit = [A.SmallestMaxSize(max_size_hw=(height, width)), A.CenterCrop(height, width)]
    unknown = [name for name in preprocess if name not in PREPROCESS]
    if unknown:
        raise ConfigError(f"data.preprocess={list(preprocess)}: {', '.join(unknown)} is not known; use "
                          f"{', '.join(PREPROCESS)} (or [] for none).")
    ops: list[A.BasicTransform] = [PREPROCESS[name]() for name in preprocess]
    if stage == "train" and augment is not None:
        low, high = augment.crop_scale
        if (low, high) == (1.0, 1.0) or resize == "pad":
            ops += fit
        else:
            aspect = width / height
            ops.append(A.RandomResizedCrop(size=(height, width), scale=(low, high),
                                           ratio=(3 / 4 * aspect, 4 / 3 * aspect)))
        if augment.hflip:
            ops.append(A.HorizontalFlip(p=0.5))
        if augment.vflip:
            ops.append(A.VerticalFlip(p=0.5))
        if augment.rotate or augment.zoom > 1.0:
            ops.append(A.Affine(rotate=(-augment.rotate, augment.rotate), scale=(1.0, max(1.0, augment.zoom)),
                                border_mode=cv2.BORDER_REPLICATE, p=0.75))
        if augment.warp:
            ops.append(A.Perspective(scale=(0.0, augment.warp / 2), keep_size=True, border_mode=cv2.BORDER_REPLICATE,
                                     p=0.75))
        if augment.lighting or augment.saturation:
            ops.append(A.ColorJitter(brightness=augment.lighting, contrast=augment.lighting,
                                     saturation=augment.saturation, hue=0.0, p=0.75))
        if augment.blur:
            ops.append(A.GaussianBlur(sigma_limit=(0.1, 1.0), p=augment.blur))
    else:
        ops += fit
    ops.append(ToTensorV2())  # uint8 stays uint8: normalised on the device (fishbear.data.feed)
    # predicting has no targets to move along (and boxes' label fields would be missing)
    return A.Compose(ops, **(kind.compose_args() if stage != "predict" and kind is not None else {}))
