"""Phase 2's picture rules for a dataset from URL lists (:mod:`fishbear.data.web_dataset`): the
settings of the clean, each downloaded picture verified and written again, near copies paired, and
the fetch command's settings read and checked from its config."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from fishbear.core.errors import DataError
from fishbear.data.http_fetch import FetchSettings


@dataclass(frozen=True)
class CleanSettings:
    """What the clean phase does with the kept bytes."""

    keep: str = "jpeg"           # jpeg (RGB, quality 95) or lossless (PNG)
    square: str | None = None     # pad: letterboxed to a square (black), the Level-2 "square-padded"
    max_size: int | None = None   # the longer side at most this many pixels
    max_pixels: int = 40_000_000  # refused before decoding above this (decompression bombs)
    test_per_class: int = 0       # images of each class drawn into test/ (seeded)
    seed: int = 42
    near_bits: int = 6            # perceptual-hash distance that counts as a near copy
    quality: int = 95

    def check(self) -> None:
        if self.keep not in ("jpeg", "lossless"):
            raise DataError(f"keep={self.keep}: use jpeg or lossless.")
        if self.square not in (None, "pad"):
            raise DataError(f"square={self.square}: use pad (or leave it out).")
        if self.max_size is not None and self.max_size < 8:
            raise DataError(f"max_size={self.max_size}: give at least 8 pixels (or leave it out).")
        if self.test_per_class < 0:
            raise DataError(f"test_per_class={self.test_per_class}: give 0 or more.")
        if self.max_pixels < 1:
            raise DataError(f"max_pixels={self.max_pixels}: give 1 or more.")
        if not 0 <= self.near_bits <= 64:
            raise DataError(f"near_bits={self.near_bits}: give 0 to 64 (bits of a 64-bit perceptual hash).")
        if not 1 <= self.quality <= 100:
            raise DataError(f"quality={self.quality}: give a JPEG quality from 1 to 100.")


def verified(data: bytes, settings: CleanSettings) -> tuple[bytes, str, tuple[int, int], Any]:
    """The image in ``data`` decoded whole and re-encoded: (bytes, suffix, (width, height), the
    RGB picture for the near-copy hash). Raises ``ValueError`` with the reason when it is none."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            if width * height > settings.max_pixels:
                raise ValueError(f"too many pixels: {width} x {height} (max_pixels={settings.max_pixels}), a "
                                 "possible decompression bomb")
            opened.load()
            picture = ImageOps.exif_transpose(opened).convert("RGB")
    except UnidentifiedImageError:
        start = data[:64].lstrip().lower()
        kind = "an HTML page" if start.startswith((b"<!doctype html", b"<html")) else f"{len(data)} bytes of no image format"
        raise ValueError(f"not an image ({kind})") from None
    except Image.DecompressionBombError as err:
        raise ValueError(f"too many pixels: {err}") from None
    except OSError as err:
        raise ValueError(f"truncated or damaged image ({err})") from None
    if settings.square == "pad" and picture.width != picture.height:
        side = max(picture.size)
        canvas = Image.new("RGB", (side, side))
        canvas.paste(picture, ((side - picture.width) // 2, (side - picture.height) // 2))
        picture = canvas
    if settings.max_size and max(picture.size) > settings.max_size:
        scale = settings.max_size / max(picture.size)
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                                 Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if settings.keep == "lossless":
        picture.save(buffer, format="PNG")
        return buffer.getvalue(), ".png", picture.size, picture
    picture.save(buffer, format="JPEG", quality=settings.quality)
    return buffer.getvalue(), ".jpg", picture.size, picture


def near_pairs(prints: dict[str, Any], bits: int) -> list[tuple[str, str, int]]:
    """Pairs of written images whose perceptual hashes differ in at most ``bits`` and whose colour
    thumbnails agree (``fishbear.data.duplicates``' test), closest first."""
    import numpy as np

    from fishbear.data.duplicates import THUMB_TOLERANCE, hamming

    keys = list(prints)
    if len(keys) < 2:
        return []
    hashes = np.array([prints[k].phash for k in keys], dtype=np.uint64)
    thumbs = np.stack([np.frombuffer(prints[k].thumb, dtype=np.uint8).astype(np.float32) for k in keys])
    distance = hamming(hashes, hashes)
    pairs = []
    for i, j in zip(*np.nonzero(np.triu(distance <= bits, k=1))):
        if prints[keys[i]].sha1 != prints[keys[j]].sha1 and np.abs(thumbs[i] - thumbs[j]).mean() <= THUMB_TOLERANCE:
            pairs.append((keys[i], keys[j], int(distance[i, j])))
    return sorted(pairs, key=lambda p: (p[2], p[0], p[1]))


def settings_from(values: dict[str, Any]) -> tuple[FetchSettings, CleanSettings]:
    """The fetch and clean settings of flat ``key: value`` config entries (``conf/fetch.yaml``, a
    URL-list source); a key neither has is refused, naming the keys there are."""
    from dataclasses import fields

    names = {"fetch": {f.name for f in fields(FetchSettings)}, "clean": {f.name for f in fields(CleanSettings)}}
    unknown = sorted(set(values) - names["fetch"] - names["clean"])
    if unknown:
        raise DataError(f"unknown fetch setting(s) {', '.join(unknown)}; the settings are "
                        f"{', '.join(sorted(names['fetch'] | names['clean']))}.")
    pick = lambda group: {k: v for k, v in values.items() if k in names[group] and v is not None}  # noqa: E731
    for cls, group in ((FetchSettings, "fetch"), (CleanSettings, "clean")):
        _check_types(cls, pick(group))
    fetch, clean = FetchSettings(**pick("fetch")), CleanSettings(**pick("clean"))
    clean.check()
    _check_fetch(fetch)
    return fetch, clean


def _check_types(cls: type, values: dict[str, Any]) -> None:
    """Each given setting of the type its field declares (``max_size=abc`` is one line, not a
    TypeError when the first image is cleaned)."""
    from dataclasses import fields

    wanted = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
    for field_ in fields(cls):
        if field_.name not in values:
            continue
        value, kind = values[field_.name], str(field_.type).split("|")[0].strip()
        accepted = wanted.get(kind, (object,))
        if not isinstance(value, accepted) or (kind in ("int", "float") and isinstance(value, bool)):
            what = {"int": "a whole number", "float": "a number", "bool": "true or false"}.get(kind, "a word")
            raise DataError(f"{field_.name}={value!r}: give {what} (default {field_.default}).")


def _check_fetch(settings: FetchSettings) -> None:
    lowest = {"workers": 1, "timeout": 0.001, "retries": 0, "backoff": 0, "max_bytes": 1, "max_redirects": 0}
    for name, low in lowest.items():
        if getattr(settings, name) < low:
            raise DataError(f"{name}={getattr(settings, name)}: give {'more than 0' if low == 0.001 else f'{low} or more'}.")
