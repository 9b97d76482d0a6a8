"""Runs that cannot mean anything are refused before training, with the file and the fix: one
class, an empty split, a data root that is a file, an image too large to decode, an unreadable
folder."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fishbear.core.errors import DataError

from .conftest import TINY, compose_train


def decompression_bomb(path: Path, side: int = 20000) -> Path:
    """A PNG whose header says ``side`` x ``side`` (400 M pixels): a few hundred bytes on disk that
    PIL refuses to decode (twice its MAX_IMAGE_PIXELS)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path


def _folder(root: Path, classes: dict[str, int], splits: tuple[str, ...] = ("train",)) -> Path:
    for split in splits:
        for name, count in classes.items():
            for i in range(count):
                path = root / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((16, 16, 3), 20 * i, np.uint8)).save(path)
    return root


FOLDER = ["data=folder", "model=mlp", "data.image_size=16", "data.batch_size=4", "data.num_workers=0",
          "trainer.max_epochs=1", "trainer.num_sanity_val_steps=0", "logger=none"]


def _train(overrides: list[str], tmp_path: Path):
    from fishbear.train import train

    base = FOLDER if any(o.startswith("data=folder") for o in overrides) else [*TINY, "logger=none", "model=mlp"]
    return train(compose_train([*base, *[o for o in overrides if o != "data=folder"]], tmp_path / "run"))


def test_a_one_class_folder_is_refused(tmp_path):
    root = _folder(tmp_path / "data", {"bear": 6})
    with pytest.raises(DataError, match=r"only one class \(bear\) was found; a classifier needs two or more"):
        _train(["data=folder", f"data.root={root}"], tmp_path)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_empty_test_folder_is_refused(tmp_path):
    root = _folder(tmp_path / "data", {"a": 5, "b": 5})
    (root / "test").mkdir()
    with pytest.raises(DataError, match=r"the test split\(s\) hold no images"):
        _train(["data=folder", f"data.root={root}"], tmp_path)


def test_a_data_root_that_is_a_file_says_so(tmp_path):
    (tmp_path / "data.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"data.root=.*data.zip is a file, not a folder"):
        _train(["data=folder", f"data.root={tmp_path / 'data.zip'}"], tmp_path)


def test_a_decompression_bomb_in_a_class_folder_is_named(tmp_path):
    root = _folder(tmp_path / "data", {"a": 5, "b": 5})
    decompression_bomb(root / "train" / "b" / "huge.png")
    with pytest.raises(DataError, match=r"huge\.png \(\w+ split\) cannot be read as an image \(too many pixels"):
        _train(["data=folder", f"data.root={root}"], tmp_path)


def test_an_unreadable_folder_is_one_line_naming_it(tmp_path, monkeypatch):
    """As root every folder is readable, so the reader's PermissionError is what is simulated."""
    from fishbear.formats.imagefolder import ImageFolderReader

    root = _folder(tmp_path / "data", {"a": 5, "b": 5})

    def denied(self, path):
        raise PermissionError(13, "Permission denied", str(Path(path) / "train" / "b"))

    monkeypatch.setattr(ImageFolderReader, "__call__", denied)
    with pytest.raises(DataError, match=r"train/b cannot be read \(permission denied\).*Fix the permissions"):
        _train(["data=folder", f"data.root={root}"], tmp_path)
