"""The new footage a model is adapted to: a folder of pictures (searched recursively) or a video's
frames, fed as the checkpoint feeds pictures to the network (its size, fit and preprocessing), as
uint8 batches, shuffled.

Shuffled and whole: adapting on a temporally correlated stream frame by frame fails (NOTE, Gong et
al. 2022), so every method sees all of the footage in a seeded random order. The footage's
fingerprint (names, sizes and a hash of each file's bytes, or the video file's hash and the frame
step) goes into the adapted checkpoint's provenance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fishbear.core.errors import DataError


@dataclass
class Footage:
    """``pictures``: H x W x 3 uint8 RGB frames held in memory (at the model's size once fed);
    ``source``: what they came from, for the provenance; ``names``: one per picture, for the files
    that show a picture to a person (a file's path in the folder without its suffix, or
    ``frame_<index>`` of a video)."""

    pictures: list[np.ndarray]
    source: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pictures)

    @classmethod
    def from_folder(cls, folder: str | Path, limit: int) -> Footage:
        from fishbear.data.images import is_image_file, load_rgb

        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise DataError(f"frames={folder} is not a folder; give a folder of pictures of the new footage (searched "
                            "recursively), or video=FILE.")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
        if not files:
            raise DataError(f"frames={folder} holds no pictures (.jpg, .png, ...); give the folder of the new footage.")
        chosen = spread_evenly(files, limit)
        digest = hashlib.sha256()
        for path in chosen:
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return cls([load_rgb(p) for p in chosen], {"frames": str(folder), "pictures": len(chosen),
                                                     "of": len(files), "sha256": digest.hexdigest()},
                   [p.relative_to(folder).with_suffix("").as_posix().replace("/", "__") for p in chosen])

    @classmethod
    def from_video(cls, video: str | Path, every: int, limit: int) -> Footage:
        import math

        from fishbear.core.outputs import sha256_of
        from fishbear.data.video import frame_count, read_frames

        video = Path(video).expanduser()
        total = frame_count(video)  # DataError when it cannot be read
        # an hour of footage is not held in memory: the step widened so that about `limit` frames are read
        step = max(every, math.ceil(total / limit)) if total else every
        frames = list(read_frames(video, step))
        if not frames:
            raise DataError(f"video={video} holds no frames to adapt on.")
        chosen = spread_evenly(frames, limit)
        return cls([frame.image for frame in chosen], {"video": str(video), "every": step, "pictures": len(chosen),
                   "of": math.ceil(total / every) if total else len(frames), "sha256": sha256_of(video)},
                   [f"frame_{frame.index:06d}" for frame in chosen])

    def fed(self, transform: Any) -> torch.Tensor:
        """Every picture as the network's uint8 input (N x 3 x H x W), through the checkpoint's
        prediction transform (its size, fit and preprocessing)."""
        return torch.stack([transform(image=picture)["image"] for picture in self.pictures])


def spread_evenly(items: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` of ``items``, evenly spread over them (a day's footage, not its first hour)."""
    if len(items) <= limit:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def shuffled_batches(pictures: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """``pictures`` in a seeded random order, ``batch_size`` at a time (the last batch may be short)."""
    order = torch.randperm(len(pictures), generator=generator)
    for start in range(0, len(order), batch_size):
        yield pictures[order[start:start + batch_size]]
