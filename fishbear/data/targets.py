"""How each task kind's target travels from a catalog sample through augmentation into a batch.

A codec is the one place that knows a kind's target: what albumentations must move with the image
(a mask, keypoints), how the evaluation resize treats the frame (classification centre-crops, as
torchvision and fastai do; masks and points need the whole frame, so they are resized without
cropping), how many network outputs the kind needs, and what tensor the loss receives. Readers,
the data module, the dataset and inference all ask the codec; none of them branch on the kind.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from fishbear.data.catalog import Sample
from fishbear.data.images import load_mask
from fishbear.errors import DataError


@dataclass(frozen=True)
class Codec:
    kind: str
    eval_resize: str = "crop"  # "crop": short side then centre crop; "squish": whole frame to the size
    output: str = "vector"     # what the network must produce: a "vector" per image, "dense" per pixel, "boxes"
    compose_args: dict[str, Any] = field(default_factory=dict)

    def num_outputs(self, num_classes: int) -> int:
        return num_classes

    def transform_inputs(self, sample: Sample, image: np.ndarray, num_classes: int) -> dict[str, Any]:
        """What the transform receives besides the image."""
        return {}

    def target(self, sample: Sample, out: dict[str, Any], num_classes: int) -> Any:
        return sample.target

    def stratum(self, sample: Sample) -> Hashable | None:
        """What seeded hold-outs keep in proportion (classes; for boxes, empty vs. not); None: nothing."""
        return None

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return default_collate(items)


class ClassifyCodec(Codec):
    def stratum(self, sample: Sample) -> Hashable | None:
        return sample.target


class MultiLabelCodec(Codec):
    """Targets are tag index tuples on disk and multi-hot float vectors in a batch."""

    def target(self, sample: Sample, out: dict[str, Any], num_classes: int) -> torch.Tensor:
        hot = torch.zeros(num_classes, dtype=torch.float32)
        hot[list(sample.target)] = 1.0
        return hot


class SegmentCodec(Codec):
    """Targets are mask files; albumentations crops, flips and rotates the mask with the image
    (nearest-neighbour, so class indices never blend)."""

    def transform_inputs(self, sample: Sample, image: np.ndarray, num_classes: int) -> dict[str, Any]:
        return {"mask": load_mask(sample.target, sample.image, image.shape[:2], num_classes)}

    def target(self, sample: Sample, out: dict[str, Any], num_classes: int) -> torch.Tensor:
        return torch.as_tensor(np.asarray(out["mask"]), dtype=torch.long)


class PointsCodec(Codec):
    """Targets are K x 2 pixel coordinates on disk and, in a batch, 2K values in [-1, 1] relative
    to the transformed image (fastai's convention), so any resize, crop or flip of the image moves
    them with it. Points pushed out of the frame by a crop keep their coordinates (beyond ±1)."""

    def num_outputs(self, num_classes: int) -> int:
        return 2 * num_classes

    def transform_inputs(self, sample: Sample, image: np.ndarray, num_classes: int) -> dict[str, Any]:
        points = np.asarray(sample.target, dtype=np.float32).reshape(-1, 2)
        if len(points) != num_classes:
            raise DataError(f"{sample.image} has {len(points)} point(s), the dataset names {num_classes}.")
        return {"keypoints": points}

    def target(self, sample: Sample, out: dict[str, Any], num_classes: int) -> torch.Tensor:
        height, width = out["image"].shape[-2:]
        points = torch.as_tensor(np.asarray(out["keypoints"], dtype=np.float32)).reshape(-1, 2)
        scale = torch.tensor([width, height], dtype=torch.float32)
        return (points / scale * 2 - 1).reshape(-1)


class DetectCodec(Codec):
    """Targets are :class:`~fishbear.data.boxes.Boxes` on disk and, in a batch, one dict per image
    (``boxes``: N x 4 pixels of the transformed image, ``labels``: N class indices), since images
    hold different numbers of boxes; albumentations moves, clips and drops boxes with the image.
    Images without boxes (negatives) are kept: they teach the detector what is not an object."""

    def transform_inputs(self, sample: Sample, image: np.ndarray, num_classes: int) -> dict[str, Any]:
        boxes = sample.target
        return {"bboxes": np.asarray(boxes.xyxy, dtype=np.float32).reshape(-1, 4), "labels": list(boxes.codes)}

    def target(self, sample: Sample, out: dict[str, Any], num_classes: int) -> dict[str, torch.Tensor]:
        return {"boxes": torch.as_tensor(np.asarray(out["bboxes"], dtype=np.float32)).reshape(-1, 4),
                "labels": torch.as_tensor(np.asarray(out["labels"], dtype=np.int64)).reshape(-1)}

    def stratum(self, sample: Sample) -> Hashable | None:
        return len(sample.target) > 0

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = default_collate([{k: v for k, v in item.items() if k != "target"} for item in items])
        batch["target"] = [item["target"] for item in items]
        return batch


def _box_args() -> dict[str, Any]:
    import albumentations as A

    # a box a crop leaves less than a quarter of is dropped: what is left is no longer the object
    return {"bbox_params": A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=0.25,
                                        clip=True)}


def _keypoint_args() -> dict[str, Any]:
    import albumentations as A

    return {"keypoint_params": A.KeypointParams(format="xy", remove_invisible=False)}


CODECS: dict[str, Codec] = {
    "classify": ClassifyCodec("classify"),
    "multilabel": MultiLabelCodec("multilabel"),
    "segment": SegmentCodec("segment", eval_resize="squish", output="dense"),
    "points": PointsCodec("points", eval_resize="squish", compose_args=_keypoint_args()),
    "detect": DetectCodec("detect", eval_resize="squish", output="boxes", compose_args=_box_args()),
}


def codec(kind: str) -> Codec:
    try:
        return CODECS[kind]
    except KeyError:
        raise DataError(f"unknown task kind {kind!r}; known: {', '.join(CODECS)}") from None


def points_to_pixels(values: np.ndarray, width: float, height: float) -> np.ndarray:
    """Network outputs in [-1, 1] (N x 2K) as N x K x 2 pixel coordinates of a width x height image."""
    points = np.asarray(values, dtype=np.float64).reshape(len(values), -1, 2)
    return (points + 1) / 2 * np.array([width, height])
