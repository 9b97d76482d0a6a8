"""Reading image files, with errors that name the file and what to do about it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fishbear.core.errors import DataError

# what an image may hold at most: PIL refuses twice its MAX_IMAGE_PIXELS (~179 M pixels) as a
# decompression bomb, a small file that decodes to gigabytes; fishbear names the file and moves on
UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)

# .jfif and .jpe are JPEGs under the names browsers and old cameras save them with
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
ORIENTATION = 0x0112  # the EXIF tag a camera writes when the picture is stored on its side
SWAPS_SIDES = (5, 6, 7, 8)  # orientations whose upright picture has width and height exchanged


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def orientation_of(image: Image.Image) -> int:
    """The EXIF orientation (1: upright, as stored; 2-8: mirrored and/or turned), 1 when absent."""
    try:
        value = image.getexif().get(ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):  # a damaged EXIF block: taken as no orientation
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size_of(image: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of the picture as it looks (and as :func:`as_rgb` reads it): the stored
    size with the sides exchanged when the EXIF orientation turns it a quarter."""
    width, height = image.size
    return (height, width) if orientation_of(image) in SWAPS_SIDES else (width, height)


def _grey_scale(values: np.ndarray, mode: str) -> float:
    """What a grey image's full white is: 16-bit modes 65535; 32-bit integers and floats by the
    range their values use (floats in 0-1 as 1.0, as image viewers and scikit-image show them)."""
    if mode.startswith("I;16"):
        return 65535.0
    top = float(values.max()) if values.size else 0.0
    for high in ((1.0,) if mode == "F" else ()) + (255.0, 65535.0):
        if top <= high:
            return high
    return top


def as_rgb(image: Image.Image) -> np.ndarray:
    """An opened image as H x W x 3 uint8, as it looks, by one rule for every mode: the EXIF
    orientation a camera wrote is applied (a portrait photo is not read on its side); 16-bit,
    32-bit and float greys are scaled to 8 bits by their range (PIL's own conversion clips them:
    a 16-bit gradient became nearly all white, a 0-1 float TIFF black), NaN as black; grey,
    palette, CMYK and alpha images become RGB. The standalone predictor holds the same rule
    (a test compares the two)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        grey = np.clip(np.round(values / _grey_scale(values, image.mode) * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


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
