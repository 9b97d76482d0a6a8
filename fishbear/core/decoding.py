"""One decoding rule for every picture fishbear reads (training, label readers' size checks,
predict, serve, review, the report's pictures; the standalone predictor holds a copy a test
compares): as the picture looks, whatever its mode and orientation.

Here, below every other room, so the reports' figures read pictures the way the model does.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

ORIENTATION = 0x0112  # the EXIF tag a camera writes when the picture is stored on its side
SWAPS_SIDES = (5, 6, 7, 8)  # orientations whose upright picture has width and height exchanged


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
    """What a grey image's full white is: 16-bit modes 65535; 32-bit integers 255 or 65535 when
    their values fit, else their largest; floats 1.0 when they lie in 0-1 (as image viewers and
    scikit-image show them), else their largest (a depth map or a measurement in its own units)."""
    if mode.startswith("I;16"):
        return 65535.0
    top = float(values.max()) if values.size else 0.0
    for high in (1.0,) if mode == "F" else (255.0, 65535.0):
        if top <= high:
            return high
    return max(top, 1e-12)


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
