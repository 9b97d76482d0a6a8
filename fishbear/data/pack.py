"""A dataset packed as shards that stream (LitData): what ``fishbear pack`` writes and training reads.

A pack holds each split of a dataset as it was given to it (``train/``, ``valid/``, ``test/``),
each as two LitData datasets written by ``litdata.optimize``: ``<split>/images`` (the pictures,
encoded) and ``<split>/labels`` (each picture's name under the source root and its target in the
kind's units, as :meth:`fishbear.kinds.base.Kind.pack_target` stores it), item ``i`` of one
matching item ``i`` of the other. The labels are small, so a run reads them whole to make its
catalog; the pictures are read one at a time, by index, through LitData's chunk reader.

A picture is stored as its file's own bytes (so a run from the pack sees the pixels a run from the
folder sees), or, with ``max_side``, decoded upright, resized so its longer side is at most that
many pixels and encoded again as JPEG at ``quality``; its target is scaled with it (boxes, points,
masks). ``fishbear-pack.json`` at the root says what the pack holds: the kind, the classes, each
split's count and fingerprint (the same as the folder's, so a run's provenance does not change by
packing), ``max_side`` and ``quality``. It is written with ``complete: false`` first: a killed pack
is completed by running the same command again (finished splits are kept).

Why LitData: it is Lightning's, it writes chunked shards with one call and reads them from a
folder or an object store (``s3://``, ``gs://``) with a bounded local cache, each process reading
its own share; WebDataset's tar shards read sequentially only, and FFCV needs its own loader and
JPEG decoder in place of albumentations.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample
from fishbear.data.pack_place import PackPlace, is_url, place_of, s3_errors

PACK_INDEX = "fishbear-pack.json"
PACK_VERSION = 1
SPLITS = ("train", "valid", "test")
LABEL_CHUNK_BYTES = 64 * 1000**2  # labels are small: a split's are read whole, from one shard or few


@dataclass(frozen=True)
class PackSettings:
    """``max_side``: the longer side of a stored picture at most this many pixels (None: the file
    as it is); ``quality``: JPEG quality of a resized picture; ``chunk_bytes``: a shard's size;
    ``workers``: processes that encode."""

    max_side: int | None = None
    quality: int = 90
    chunk_bytes: int | str = "64MB"  # LitData's chunk size: bytes, or a size such as "64MB" (made bytes here)
    workers: int = 1

    def __post_init__(self) -> None:
        if self.max_side is not None and (not isinstance(self.max_side, int) or self.max_side < 8):
            raise DataError(f"max_side={self.max_side}: give a whole number of 8 pixels or more (or leave it out).")
        if not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise DataError(f"quality={self.quality}: give a JPEG quality from 1 to 100.")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise DataError(f"workers={self.workers}: give 1 or more.")
        object.__setattr__(self, "chunk_bytes", _bytes(self.chunk_bytes))


_UNITS = {"KB": 1000, "MB": 1000**2, "GB": 1000**3}


def _bytes(size: int | str) -> int:
    """``size`` (bytes, or a number with KB, MB or GB, LitData's decimal units) as bytes."""
    import re

    text = str(size).strip().upper()
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(KB|MB|GB)?", text)
    number = float(found.group(1)) * _UNITS.get(found.group(2) or "", 1) if found else 0
    if isinstance(size, bool) or number < 1000:
        raise DataError(f"chunk_bytes={size}: give a shard size of 1KB or more (a number of bytes, or with KB, MB, GB).")
    return int(number)


def is_pack(root: str | Path) -> bool:
    """Whether ``root`` (a folder, or ``s3://bucket/prefix``) holds a pack's index."""
    if is_url(root):
        return place_of(root).read_text(PACK_INDEX) is not None
    return (Path(str(root)).expanduser() / PACK_INDEX).is_file()


def read_index(root: str | Path | PackPlace) -> dict[str, Any]:
    """``fishbear-pack.json`` at ``root`` (a folder, ``s3://...`` or a place), checked for what a run reads of it."""
    place = place_of(root) if isinstance(root, (str, Path)) else root
    path = place.part(PACK_INDEX)
    try:
        text = place.read_text(PACK_INDEX)
        if text is None:
            raise FileNotFoundError("no such file")
        index = json.loads(text)
    except (OSError, ValueError) as err:
        raise DataError(f"{path} cannot be read as a pack's index ({err}). Pack the dataset again.") from None
    wanted = {"version": int, "kind": str, "classes": list, "splits": dict, "complete": bool}
    wrong = [key for key, kind in wanted.items() if not isinstance(index.get(key) if isinstance(index, dict) else None, kind)]
    if wrong:
        raise DataError(f"{path} is not a fishbear pack's index (missing or malformed: {', '.join(wrong)}). "
                        "Pack the dataset again.")
    if index["version"] > PACK_VERSION:
        raise DataError(f"{path} was written by a newer fishbear (pack version {index['version']}); upgrade fishbear.")
    if not index["complete"]:
        raise DataError(f"{place.url} is a pack that was not finished (its fishbear pack was stopped). Run the same "
                        "fishbear pack command again: it completes the pack.")
    return index


def stored_picture(path: Path, settings: PackSettings) -> tuple[bytes, float]:
    """What the pack stores for the picture at ``path`` and the scale its target takes: the file's
    bytes (scale 1), or the upright picture resized to ``max_side`` and encoded as JPEG."""
    from PIL import Image

    from fishbear.core.decoding import as_rgb

    data = Path(path).read_bytes()
    if settings.max_side is None:
        return data, 1.0
    with Image.open(io.BytesIO(data)) as opened:
        rgb = as_rgb(opened)
    height, width = rgb.shape[:2]
    scale = min(1.0, settings.max_side / max(height, width))
    if scale == 1.0:
        picture = Image.fromarray(rgb)
    else:
        picture = Image.fromarray(rgb).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                              Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=settings.quality)
    return buffer.getvalue(), scale


def _pack_item(entry: tuple[int, str, str, Any], kind: Any, settings: PackSettings, part: str) -> dict[str, Any]:
    """One item of a split's ``images`` or ``labels`` dataset (``litdata.optimize``'s function)."""
    index, image, name, target = entry
    if part == "images":
        return {"index": index, "image": stored_picture(Path(image), settings)[0]}
    return {"index": index, "name": name, "target": kind.pack_target(Sample(Path(image), target),
                                                                       picture_scale(Path(image), settings))}


def picture_scale(path: Path, settings: PackSettings) -> float:
    """The scale :func:`stored_picture` resizes by, from the picture's header (its upright size)."""
    if settings.max_side is None:
        return 1.0
    from fishbear.data.boxes import image_geometry

    (width, height), _, _ = image_geometry(path)
    return min(1.0, settings.max_side / max(height, width))


def write_split(samples: list[Sample], root: Path, out: PackPlace, split: str, kind: Any,
                settings: PackSettings) -> None:
    """One split's ``images`` and ``labels`` datasets under ``out``'s ``split`` (new there)."""
    from functools import partial

    import litdata

    entries = [(i, str(s.image), _name(s.image, root), s.target) for i, s in enumerate(samples)]
    # LitData's default start method (spawn) re-imports the caller's main module in each worker; a
    # fork does not (where the platform has it)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with warnings.catch_warnings(), out.staging():
        # LitData warns of a chunk larger than its target at every small split's last chunk
        warnings.filterwarnings("ignore", message="An item was larger than the target chunk size")
        for part, chunk_bytes in (("labels", LABEL_CHUNK_BYTES), ("images", settings.chunk_bytes)):
            with s3_errors(out.part(split, part)):
                litdata.optimize(fn=partial(_pack_item, kind=kind, settings=settings, part=part), inputs=entries,
                                 output_dir=out.part(split, part), chunk_bytes=chunk_bytes,
                                 num_workers=settings.workers, mode=None, start_method=method, verbose=False,
                                 keep_data_ordered=True)
            written = _count(out, split, part)
            if written != len(entries):  # a worker that failed leaves an index with fewer items, and says so only in its log
                raise DataError(f"packing {out.part(split, part)} wrote {written} of {len(entries)} items (a worker "
                                "failed; its error is above). Fix the cause and run the same fishbear pack command again.")


def _count(place: PackPlace, split: str, part: str) -> int:
    """The items LitData's index of ``split``/``part`` lists (0 when there is none)."""
    try:
        index = json.loads(place.read_text(f"{split}/{part}/index.json") or "{}")
    except ValueError:
        return 0
    return sum(int(chunk.get("chunk_size", 0)) for chunk in index.get("chunks") or [])


def _name(image: Path, root: Path) -> str:
    try:
        return Path(image).absolute().relative_to(Path(root).absolute()).as_posix()
    except ValueError:
        return Path(image).name


def index_of(catalog: Catalog, kind: Any, fingerprint: dict[str, Any], settings: PackSettings, source: str,
             complete: bool) -> dict[str, Any]:
    return {"version": PACK_VERSION, "kind": kind.name, "classes": list(catalog.classes), "source": source,
            "splits": {name: {"count": len(samples), **fingerprint.get(name, {})}
                       for name, samples in catalog.splits.items()},
            "settings": {k: v for k, v in asdict(settings).items() if k in ("max_side", "quality")},
            "complete": complete}


def write_pack(catalog: Catalog, root: Path, kind: Any, fingerprint: dict[str, Any], out: str | Path | PackPlace,
               settings: PackSettings, source: str) -> dict[str, Any]:
    """Pack ``catalog`` (read from ``root``, its splits made) into ``out`` (a folder, or
    ``s3://bucket/prefix``); returns the index.

    ``out`` is new, empty, or this same pack stopped before it finished (its index names the same
    source, settings and splits): then the splits already written are kept and the others written
    again. A finished pack of the same data is left as it is; anything else in ``out`` is refused."""
    place = place_of(out) if isinstance(out, (str, Path)) else out
    wanted = index_of(catalog, kind, fingerprint, settings, source, complete=False)
    done = _resumable(place, wanted)
    if done is None:
        return {**wanted, "complete": True, "already": True}
    place.write_text(PACK_INDEX, json.dumps(wanted, indent=2) + "\n")
    for split, samples in catalog.splits.items():
        if split in done:
            continue
        place.remove(split)  # what a stopped pack began of this split (only LitData's files)
        write_split(samples, root, place, split, kind, settings)
    finished = {**wanted, "complete": True}
    place.write_text(PACK_INDEX, json.dumps(finished, indent=2) + "\n")
    return finished


def _resumable(place: PackPlace, wanted: dict[str, Any]) -> set[str] | None:
    """The splits at ``place`` already written for this same pack (empty for a new place); None when
    the same pack is finished there; a :class:`DataError` when ``place`` holds anything else."""
    empty = place.is_empty()
    text = None if empty else place.read_text(PACK_INDEX)
    if text is None:
        if not empty:
            raise DataError(f"out={place.url} holds files fishbear pack did not write; give a new or empty "
                            f"{'prefix' if place.remote else 'folder'}.")
        return set()
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    same = isinstance(found, dict) and all(found.get(k) == wanted[k] for k in ("kind", "classes", "source", "splits",
                                                                                "settings"))
    if not same:
        raise DataError(f"out={place.url} holds another pack (of other data, splits or settings); give a new "
                        "place, or delete that pack first.")
    if found.get("complete"):
        return None
    return {split for split, info in wanted["splits"].items()
            if all(_count(place, split, part) == info["count"] for part in ("labels", "images"))}


class PackStore:
    """A pack read by a run: its catalog (names under the pack's root, targets unpacked) and the
    pictures, decoded by fishbear's one rule from the stored bytes."""

    def __init__(self, root: str | Path | PackPlace) -> None:
        self.place = place_of(root) if isinstance(root, (str, Path)) else root
        self.root = self.place.names_root  # the pictures' names are paths under it (a run's samples are paths)
        self.url = self.place.url
        self.index = read_index(self.place)
        self._where: dict[Path, tuple[str, int]] = {}
        self._images: dict[str, Any] = {}

    def shards(self, split: str, part: str, **options: Any) -> Any:
        """LitData's dataset of ``split``'s ``part`` (``images`` or ``labels``), cached locally when remote."""
        import litdata

        with s3_errors(self.place.part(split, part)):
            dataset = litdata.StreamingDataset(self.place.part(split, part), cache_dir=self.place.cache_dir, **options)
            if self.place.remote:
                # an empty slice turns LitData's reads by index to whole shards, cached (a slice's way),
                # not one ranged request per item every time: 2,000 labels from a bucket in 1 s, not 84
                dataset[0:0]
            return dataset

    def catalog(self, kind: Any) -> Catalog:
        splits: dict[str, list[Sample]] = {}
        for split, info in self.index["splits"].items():
            labels = self.shards(split, "labels")
            samples = []
            # every item, by its global index: under DDP a StreamingDataset's len() is this process's share only
            for i in range(_count(self.place, split, "labels")):
                item = labels[i]
                if int(item["index"]) != i:
                    raise DataError(f"{self.place.part(split)}: the labels are out of order; pack the dataset again.")
                path = self.root / str(item["name"])
                self._where[path] = (split, i)
                samples.append(Sample(path, kind.unpack_target(item["target"])))
            if len(samples) != int(info["count"]):
                raise DataError(f"{self.place.part(split)} holds {len(samples)} pictures, its index says "
                                f"{info['count']}: the pack is damaged; pack the dataset again.")
            splits[split] = samples
        return Catalog(splits=splits, classes=list(self.index["classes"]), kind=str(self.index["kind"]))

    def load_rgb(self, path: Path) -> np.ndarray:
        """The picture the pack holds for ``path`` (a name under the pack's root), decoded upright."""
        from PIL import Image

        from fishbear.core.decoding import as_rgb

        split, i = self._where[Path(path)]
        if split not in self._images:
            self._images[split] = self.shards(split, "images")
        item = self._images[split][i]
        with Image.open(io.BytesIO(bytes(item["image"]))) as opened:
            return as_rgb(opened)

    def __getstate__(self) -> dict[str, Any]:  # loader workers open the shards afresh
        return {**self.__dict__, "_images": {}}

