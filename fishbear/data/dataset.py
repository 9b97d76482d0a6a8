"""A map-style dataset over catalog samples: decode, transform, hand over a dict."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from fishbear.data.catalog import Sample
from fishbear.data.images import load_rgb


class TargetCodec(Protocol):
    """What a task kind (``fishbear.kinds``) does to a sample's target on its way into a batch."""

    def transform_inputs(self, sample: Sample, image: np.ndarray, num_classes: int) -> dict[str, Any]: ...

    def target(self, sample: Sample, out: dict[str, Any], num_classes: int) -> Any: ...


class ImageDataset(Dataset):
    """Items are dicts (``image``, ``target``, ``index``, ``size``) so each task kind can add its
    own keys and the report can trace every prediction back to its file through ``index``;
    ``size`` is the original ``(height, width)``, for metrics in the original image's pixels."""

    def __init__(self, samples: list[Sample], transform: A.Compose, kind: TargetCodec,
                 num_classes: int = 0, decode: Callable[[Path], np.ndarray] | None = None) -> None:
        """``kind``: what turns a sample's target into the batch's (a task kind);
        ``decode``: how an image file becomes pixels (default: decoding it; or a cache's load)."""
        self.decode = decode or load_rgb
        self.samples = samples
        self.transform = transform
        self.kind = kind
        self.num_classes = int(num_classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.item(index, self.decode(self.samples[index].image))

    def item(self, index: int, image: np.ndarray) -> dict[str, Any]:
        """Sample ``index``'s batch item from its decoded ``image``: augmented, its target the kind's."""
        sample = self.samples[index]
        # albumentations draws from generators of its own, seeded from the OS unless told: seed
        # them per item from torch's generator, which Lightning's seed_everything(workers=True)
        # seeds in the main process and in every loader worker, so one seed gives one run. One
        # generator pair shared by the pipeline's transforms (set_random_seed builds a pair per
        # transform, a large share of a small item's cost: docs/performance.md)
        seed = int(torch.randint(2**31 - 1, ()))
        self.transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
        out = self.transform(image=image, **self.kind.transform_inputs(sample, image, self.num_classes))
        return {"image": out["image"], "target": self.kind.target(sample, out, self.num_classes), "index": index,
                "size": torch.tensor(image.shape[:2])}
