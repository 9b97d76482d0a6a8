"""A map-style dataset over catalog samples: decode, transform, hand over a dict."""

from __future__ import annotations

from typing import Any

import albumentations as A
from torch.utils.data import Dataset

from fishbear.data.catalog import Sample
from fishbear.data.images import load_rgb


class ImageDataset(Dataset):
    """Items are dicts (``image``, ``target``, ``index``) so each task kind can add its own keys
    and the report can trace every prediction back to its file through ``index``."""

    def __init__(self, samples: list[Sample], transform: A.Compose, kind: str = "classify") -> None:
        self.samples = samples
        self.transform = transform
        self.kind = kind

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        out = self.transform(image=load_rgb(sample.image))
        return {"image": out["image"], "target": sample.target, "index": index}
