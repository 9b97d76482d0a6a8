"""Images decoded once: the pixels of each training image kept as an ``.npy`` file, so later epochs
read an array instead of decoding a JPEG or PNG again (``data.decode_cache=true``).

Measured on 2 CPU cores (benchmarks/loader.py): decoding was 0.84 ms of a bears image's 1.5 ms in
the loader. The cache holds raw pixels (H x W x 3 bytes per image, several times the JPEG), under
``<data.cache_dir>/decoded/``, keyed by the file's path, size and modification time, so an edited
image is decoded again. Files are written atomically (loader workers may race to write the same
one). The arrays are the same as decoding gives, so every kind's labels (boxes, points, masks)
still fit them.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from fishbear.core.atomic import atomic_write
from fishbear.data.images import load_rgb


class DecodedImages:
    """``load(path)``: the decoded H x W x 3 uint8 array, from the cache when it is there."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()

    def _file(self, path: Path) -> Path:
        stat = path.stat()
        key = hashlib.sha1(f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
        return self.folder / key[:2] / f"{key}.npy"

    def load(self, path: str | Path) -> np.ndarray:
        path = Path(path)
        try:
            cached = self._file(path)
        except FileNotFoundError:
            return load_rgb(path)  # its error names the file
        try:
            return np.load(cached, allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError):  # not yet there, or cut short: decode again
            pass
        image = load_rgb(path)
        buffer = io.BytesIO()
        np.save(buffer, image, allow_pickle=False)
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cached, lambda out: out.write(buffer.getvalue()))
        return image
