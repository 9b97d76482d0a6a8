"""``data.stream=true``: a pack's training split read in chunk order by LitData's streaming loader.

The pictures are shuffled by chunks and within them, anew each epoch from the seed. Each DDP process
reads its own share, as many as the others (the remainder is left out of that epoch). The loader's
position travels in the data module's checkpoint state, so a run resumed from a checkpoint taken
mid-epoch reads each remaining picture once. Without it a pack's split is read by index, as a
folder's files are (:class:`fishbear.data.pack.PackStore`).
"""

from __future__ import annotations

import io
from typing import Any

import litdata
from PIL import Image

from fishbear.core.decoding import as_rgb


class PictureStream(litdata.StreamingDataset):
    """A split's stored pictures, in LitData's order, each made the item ``dataset`` makes of it
    (an ``ImageDataset`` of the split's samples, in the pack's order: the same augmentation and
    target as a run read by index)."""

    def __init__(self, input_dir: str, dataset: Any, seed: int) -> None:
        # drop_last: LitData's choice (each process as many items as the others under DDP, so their
        # collective calls stay in step; every item in one process)
        super().__init__(input_dir, shuffle=True, seed=seed, drop_last=None)
        self.dataset = dataset

    def __getitem__(self, index: Any) -> dict[str, Any]:
        item = super().__getitem__(index)
        with Image.open(io.BytesIO(bytes(item["image"]))) as opened:
            return self.dataset.item(int(item["index"]), as_rgb(opened))


def stream_loader(root: Any, split: str, dataset: Any, batch_size: int, num_workers: int, seed: int, collate: Any,
                  pin_memory: bool) -> litdata.StreamingDataLoader:
    """The streaming loader of ``split`` of the pack at ``root``."""
    stream = PictureStream(str(root / split / "images"), dataset, seed)
    return litdata.StreamingDataLoader(stream, batch_size=batch_size, num_workers=num_workers, collate_fn=collate,
                                       pin_memory=pin_memory, persistent_workers=num_workers > 0)
