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

    def __init__(self, input_dir: str, dataset: Any, seed: int, cache_dir: str | None = None) -> None:
        # drop_last: LitData's choice (each process as many items as the others under DDP, so their
        # collective calls stay in step; every item in one process)
        super().__init__(input_dir, shuffle=True, seed=seed, drop_last=None, cache_dir=cache_dir)
        self.dataset = dataset

    def __getitem__(self, index: Any) -> dict[str, Any]:
        item = super().__getitem__(index)
        with Image.open(io.BytesIO(bytes(item["image"]))) as opened:
            return self.dataset.item(int(item["index"]), as_rgb(opened))


class PictureLoader(litdata.StreamingDataLoader):
    """LitData's streaming loader, whose failure to fetch a shard (its object-store client retries
    a few times within a second or two, then its prefetch thread gives up) ends the run with one
    line that says how to resume it, not a traceback from a thread."""

    def __init__(self, stream: PictureStream, url: str, **options: Any) -> None:
        super().__init__(stream, **options)
        self.url = url

    def __iter__(self) -> Any:
        try:
            yield from super().__iter__()
        except Exception as err:  # noqa: BLE001 (sorted below: only a failed fetch becomes a DataError)
            if not _failed_fetch(err):
                raise
            from fishbear.core.errors import DataError

            reason = str(err).split("Debug source")[0].strip().splitlines()[-1][:300]
            raise DataError(f"{self.url}: a shard of pictures could not be fetched mid-epoch ({reason}). Check the network "
                            "and the object store, then resume the run: the same command with ckpt_path=last (with "
                            "callbacks.last_checkpoint.every_n_train_steps=N it resumes within the epoch).") from None


def _failed_fetch(err: BaseException) -> bool:
    """Whether ``err`` (or its cause) is LitData's crashed prefetch or an object store's refusal."""
    while err is not None:
        module = type(err).__module__ or ""
        if "prefetch thread crashed" in str(err) or module.startswith(("obstore", "botocore")):
            return True
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return False


def stream_loader(store: Any, split: str, dataset: Any, batch_size: int, num_workers: int, seed: int, collate: Any,
                  pin_memory: bool) -> litdata.StreamingDataLoader:
    """The streaming loader of ``split`` of the pack ``store`` reads (:class:`fishbear.data.pack.PackStore`)."""
    from fishbear.data.pack_place import s3_errors

    with s3_errors(store.place.part(split, "images")):
        stream = PictureStream(store.place.part(split, "images"), dataset, seed, store.place.cache_dir)
    return PictureLoader(stream, store.place.part(split, "images"), batch_size=batch_size, num_workers=num_workers,
                         collate_fn=collate, pin_memory=pin_memory, persistent_workers=num_workers > 0)
