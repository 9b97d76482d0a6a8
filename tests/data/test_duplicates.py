"""Near-copies across splits are found (a renamed copy, a resized and re-encoded copy), reported,
dropped or refused as ``data.duplicates`` asks; exact copies within a split and one file under two
labels are named."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from fishbear.core.errors import DataError
from fishbear.engine.data_config import image_data
from fishbear.formats.imagefolder import ImageFolderReader


def _picture(seed: int, size: int = 96) -> Image.Image:
    """A smooth random picture (blobs of colour at random places): distinct pictures differ in
    their low frequencies, as photographs do."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.zeros((size, size, 3))
    for _ in range(6):
        cy, cx, r = rng.uniform(0, 1, 2).tolist() + [rng.uniform(0.1, 0.4)]
        image += rng.uniform(0, 1, 3) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / r ** 2)[..., None]
    return Image.fromarray((255 * image / image.max()).astype(np.uint8))


@pytest.fixture
def folder(tmp_path):
    """train/{a,b}/ and test/{a,b}/, 10 distinct pictures per class in train, 4 in test."""
    seed = 0
    for split, n in (("train", 10), ("test", 4)):
        for label in ("a", "b"):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(n):
                _picture(seed).save(tmp_path / split / label / f"{i}.png")
                seed += 1
    return tmp_path


def _module(root, **kwargs):
    dm = image_data(root=root, reader=ImageFolderReader(valid=None), valid_pct=0.25, num_workers=0,
                         cache_dir=root / ".cache", **kwargs)
    dm.setup()
    return dm


def _plant(root):
    """A test image copied into train under another name, and a resized, re-encoded JPEG copy."""
    shutil.copy(root / "test/a/0.png", root / "train/a/renamed.png")
    with Image.open(root / "test/b/1.png") as image:
        image.resize((70, 70), Image.BICUBIC).save(root / "train/b/smaller.jpg", quality=75)


def test_distinct_pictures_raise_nothing(folder):
    check = _module(folder).duplicate_check
    assert check.leaks == 0 and check.pairs == [] and check.within_split == []


def test_planted_copies_are_found_and_reported(folder, caplog):
    _plant(folder)
    with caplog.at_level(logging.WARNING):
        dm = _module(folder)
    summary = dm.describe()["duplicates"]
    pairs = {(p["kept"], p["copy"].rsplit("/", 1)[-1]) for p in summary["closest_pairs"] if p["kept_split"] == "test"}
    assert pairs == {(str(folder / "test/a/0.png"), "renamed.png"), (str(folder / "test/b/1.png"), "smaller.jpg")}
    assert summary["images_with_copy_in_another_split"]["test"] == 2
    warnings = [r.getMessage() for r in caplog.records if "Possible leak" in r.getMessage()]
    assert len(warnings) == 1 and "data.duplicates=drop" in warnings[0]


def test_drop_removes_the_train_side_copies(folder):
    _plant(folder)
    dm = _module(folder, duplicates="drop")
    every = {s.image.name for split in ("train", "valid") for s in dm.samples(split)}
    assert "renamed.png" not in every and "smaller.jpg" not in every
    assert len(dm.samples("test")) == 8 and dm.duplicate_check.dropped == 2
    assert len(dm.samples("train")) + len(dm.samples("valid")) == 20


def test_error_stops_naming_a_pair(folder):
    _plant(folder)
    with pytest.raises(DataError, match=r"leak: test images 2 .*data.duplicates=error"):
        _module(folder, duplicates="error")


def test_exact_copies_within_a_split_and_under_two_labels(folder):
    shutil.copy(folder / "train/a/3.png", folder / "train/a/3-again.png")
    shutil.copy(folder / "train/a/4.png", folder / "train/b/4-as-b.png")
    summary = _module(folder, duplicates="report").describe()["duplicates"]
    within = [sorted(f.rsplit("/", 1)[-1] for f in entry["files"]) for entry in summary["exact_copies_within_a_split"]]
    assert within == [["3-again.png", "3.png"]]
    labels = summary["same_file_under_two_labels"]
    assert len(labels) == 1 and labels[0]["labels"] == ["a", "b"]


def test_hashes_are_cached_and_reused(folder, monkeypatch):
    _module(folder)
    assert (folder / ".cache" / "image-hashes-v2.json").is_file()
    import fishbear.data.duplicates as duplicates

    def refuse(path):
        raise AssertionError(f"{path} hashed again")

    monkeypatch.setattr(duplicates, "_fingerprint", refuse)
    assert _module(folder).duplicate_check.leaks == 0
