"""Reading image files, with errors that name the file and what to do about it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# the one decoding rule lives below every room (the reports' pictures use it too)
from fishbear.core.decoding import SWAPS_SIDES, as_rgb, orientation_of, upright_size_of  # noqa: F401
from fishbear.core.errors import DataError

# what an image may hold at most: PIL refuses twice its MAX_IMAGE_PIXELS (~179 M pixels) as a
# decompression bomb, a small file that decodes to gigabytes; fishbear names the file and moves on
UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)

# .jfif and .jpe are JPEGs under the names browsers and old cameras save them with
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode ``path`` to an H x W x 3 uint8 array (:func:`as_rgb`)."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            return as_rgb(image)
    except FileNotFoundError:
        raise DataError(f"Image file {path} does not exist (was it moved after the run started?).") from None
    except UNREADABLE as err:
        raise DataError(
            f"Image file {path} cannot be read as an image ({_why(err)}). "
            "Delete or replace the file, or leave such files out with data.on_bad_image=skip (training, "
            "evaluating) or on_bad_image=skip (predict)."
        ) from None


def upright_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of ``path`` as it looks, from its header (no pixels decoded)."""
    try:
        with Image.open(path) as image:
            return upright_size_of(image)
    except UNREADABLE as err:
        raise DataError(f"Image file {path} cannot be read ({_why(err)}).") from None


def header_problem(path: Path) -> str | None:
    """Why ``path``'s header cannot be read as an image's, or None: cheap enough (no pixels are
    decoded) to check every file of every split at setup."""
    try:
        with Image.open(path):
            pass
    except FileNotFoundError:
        return "missing"
    except UNREADABLE as err:
        return _why(err)
    return None


def _why(err: BaseException) -> str:
    if isinstance(err, Image.DecompressionBombError):
        return f"too many pixels to decode safely, a possible decompression bomb ({err})"
    return f"{type(err).__name__}: {err}"


def image_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as an image (decoded in full: a truncated JPEG passes a header
    check but fails when read), or None when it can."""
    try:
        with Image.open(path) as image:
            image.load()
    except FileNotFoundError:
        return "missing"
    except UNREADABLE as err:
        return _why(err)
    return None


def check_mask_size(mask: Path, image: str | Path, mask_hw: tuple[int, int], image_hw: tuple[int, int]) -> None:
    """Refuse a mask whose ``(height, width)`` differs from its image's."""
    if tuple(mask_hw) != tuple(image_hw):
        raise DataError(
            f"Mask {mask} is {mask_hw[1]}x{mask_hw[0]} but its image {image} is "
            f"{image_hw[1]}x{image_hw[0]} (width x height). A mask must have its image's size; "
            "re-export the mask, or check that data.reader.mask_name pairs the right files."
        )


def load_mask(path: str | Path, image_path: str | Path, image_hw: tuple[int, int], num_codes: int) -> np.ndarray:
    """Decode a label mask (pixel value = class index) and check it against its image and codes.

    Grey (``L``) and palette (``P``) PNGs hold class indices directly; an RGB mask does not, so it
    is refused with the fix rather than silently read as three channels of colours.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode not in ("L", "P", "I", "I;16", "1"):
                raise DataError(
                    f"Mask {path} is a {mode} image; a mask must hold one class index per pixel "
                    "(8-bit grey or palette PNG, value = line of codes.txt). Convert colour masks to indices first."
                )
            mask = np.asarray(image)
    except FileNotFoundError:
        raise DataError(f"Mask file {path} for image {image_path} does not exist. Check data.reader.mask_name "
                        "and the mask folder.") from None
    except UNREADABLE as err:
        raise DataError(f"Mask file {path} cannot be read as an image ({_why(err)}). Replace the file.") from None
    check_mask_size(path, image_path, mask.shape[:2], image_hw)
    top = int(mask.max()) if mask.size else 0
    if top >= num_codes:
        bad = sorted(int(v) for v in np.unique(mask) if v >= num_codes)
        raise DataError(
            f"Mask {path} has pixel value(s) {bad[:10]} but codes.txt names only {num_codes} classes "
            f"(values 0..{num_codes - 1}). Add the missing class names to codes.txt, or fix the mask."
        )
    return mask.astype(np.uint8 if num_codes <= 256 else np.int32)
