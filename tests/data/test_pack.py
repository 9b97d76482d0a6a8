"""Packs (``fishbear.data.pack``): every kind's dataset written as LitData shards and read back with
the same names, split, labels and pixels; resized packs scale their targets with the pictures; a
stopped pack is completed, and what is not a pack of the same data is never written over."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fishbear.core.errors import DataError
from fishbear.data.images import load_rgb
from fishbear.data.pack import PACK_INDEX, PackSettings, PackStore, read_index, write_pack
from fishbear.engine.experiment import build_datamodule
from fishbear.engine.run_folder import fingerprint
from tests.conftest import TINY, compose_train

KIND_DATA = {"classify": "shapes", "multilabel": "shapes_tags", "segment": "shapes_masks", "points": "shapes_points",
             "regress": "shapes_counts", "detect": "shapes_boxes"}


def _source(data: str, tmp_path):
    datamodule = build_datamodule(compose_train([f"data={data}", *TINY], tmp_path / "run"))
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def _pack(datamodule, out, settings=PackSettings()):
    catalog = datamodule.catalog
    return write_pack(catalog, datamodule.root, datamodule.kind, fingerprint(catalog.splits, datamodule.root), out,
                      settings, source=str(datamodule.root))


def _same_target(kind: str, a, b) -> bool:
    if kind == "detect":
        return np.allclose(a.xyxy, b.xyxy) and a.labels == b.labels and a.codes == b.codes
    if kind == "segment":
        from PIL import Image

        with Image.open(a) as mask:
            return np.array_equal(np.asarray(mask), b)
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("kind", sorted(KIND_DATA))
def test_a_pack_holds_the_same_names_split_labels_and_pixels(kind, tmp_path):
    source = _source(KIND_DATA[kind], tmp_path)
    index = _pack(source, tmp_path / "pack")
    assert index["complete"] and index["kind"] == kind and index["classes"] == list(source.classes)
    store = PackStore(tmp_path / "pack")
    catalog = store.catalog(source.kind)
    assert fingerprint(catalog.splits, store.root) == fingerprint(source.catalog.splits, source.root)
    for split, samples in source.catalog.splits.items():
        packed = catalog.splits[split]
        assert [p.image.relative_to(store.root) for p in packed] == [s.image.relative_to(source.root) for s in samples]
        for original, copy in zip(samples, packed):
            assert _same_target(kind, original.target, copy.target), (split, original.image)
        for original, copy in list(zip(samples, packed))[:3]:
            assert np.array_equal(load_rgb(original.image), store.load_rgb(copy.image))


@pytest.mark.parametrize("kind", ["points", "detect", "segment"])
def test_a_resized_pack_scales_pictures_and_targets_together(kind, tmp_path):
    source = _source(KIND_DATA[kind], tmp_path)
    _pack(source, tmp_path / "pack", PackSettings(max_side=16, quality=95))
    assert read_index(tmp_path / "pack")["settings"] == {"max_side": 16, "quality": 95}
    store = PackStore(tmp_path / "pack")
    catalog = store.catalog(source.kind)
    original, copy = source.catalog.splits["train"][0], catalog.splits["train"][0]
    full, small = load_rgb(original.image), store.load_rgb(copy.image)
    assert max(small.shape[:2]) == 16
    scale = 16 / max(full.shape[:2])
    if kind == "points":
        assert np.allclose(copy.target, np.asarray(original.target) * scale, atol=1e-4)
    elif kind == "detect":
        assert np.allclose(copy.target.xyxy, np.asarray(original.target.xyxy) * scale, atol=1e-3)
    else:
        assert copy.target.shape == small.shape[:2]


def test_a_stopped_pack_is_completed_and_a_finished_one_left_as_it_is(tmp_path):
    source = _source("shapes", tmp_path)
    out = tmp_path / "pack"
    _pack(source, out)
    finished = (out / PACK_INDEX).read_text()
    # as a kill leaves it: the index not finished, one split half written
    (out / PACK_INDEX).write_text(json.dumps({**json.loads(finished), "complete": False}))
    shutil.rmtree(out / "test" / "images")
    with pytest.raises(DataError, match="was not finished.*Run the same fishbear pack command again"):
        PackStore(out)
    kept = (out / "train" / "images" / "index.json").stat().st_mtime_ns
    _pack(source, out)
    assert json.loads((out / PACK_INDEX).read_text()) == json.loads(finished)
    assert (out / "train" / "images" / "index.json").stat().st_mtime_ns == kept  # a finished split is not written again
    assert len(PackStore(out).catalog(source.kind).splits["test"]) == len(source.catalog.splits["test"])
    assert _pack(source, out).get("already")


def test_a_folder_that_is_not_this_pack_is_refused_and_left_as_it_was(tmp_path):
    source = _source("shapes", tmp_path)
    users = tmp_path / "mine"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="holds files fishbear pack did not write"):
        _pack(source, users)
    assert [p.name for p in users.iterdir()] == ["notes.txt"]
    _pack(source, tmp_path / "pack")
    with pytest.raises(DataError, match="holds another pack"):
        _pack(source, tmp_path / "pack", PackSettings(max_side=16))
