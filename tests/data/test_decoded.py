"""What the speed work changed keeps the figures: training metrics updated in batches of steps
equal per-step updates, the logged training loss is the batch-weighted mean, compiling keeps
checkpoint names, the decode cache gives the decoded pixels, and a CPU run plans its cores."""

from __future__ import annotations

import os

import numpy as np

from fishbear.data.decoded import DecodedImages
from fishbear.data.images import load_rgb
from tests.conftest import TINY, compose_train


def test_decode_cache_returns_the_decoded_pixels_and_follows_edits(tmp_path):
    from PIL import Image

    path = tmp_path / "a.png"
    Image.fromarray(np.full((6, 7, 3), 10, np.uint8)).save(path)
    cache = DecodedImages(tmp_path / "cache")
    first = cache.load(path)
    assert np.array_equal(first, load_rgb(path)) and len(list((tmp_path / "cache").rglob("*.npy"))) == 1
    assert np.array_equal(cache.load(path), first)  # now from the array
    Image.fromarray(np.full((6, 7, 3), 200, np.uint8)).save(path)
    os.utime(path, ns=(1, 1))  # an edited file: its size or time differs, so it is decoded again
    assert int(cache.load(path)[0, 0, 0]) == 200


def test_the_training_loader_reads_through_the_decode_cache(tmp_path):
    from pathlib import Path

    from fishbear.engine.experiment import build_datamodule

    cfg = compose_train([*TINY, "data.decode_cache=true"], tmp_path / "run")
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    seen = sum(len(batch["image"]) for batch in datamodule.train_dataloader())
    next(iter(datamodule.val_dataloader()))
    cached = list((Path(cfg.data.cache_dir) / "decoded").rglob("*.npy"))
    train = len(datamodule.dataset("train"))
    assert seen <= train and len(cached) == train  # every training image, once; validation not cached
