"""Readers, video frames and a first pass on the real sample data in ../shared/data (skipped when
it is not there)."""

from __future__ import annotations

from fishbear.engine.experiment import build_datamodule
from tests.conftest import compose_train, requires_shared


def _datamodule(overrides):
    dm = build_datamodule(compose_train(overrides))
    dm.prepare_data()
    dm.setup()
    return dm


def test_bears_imagefolder_with_validation_split_off_train():
    root = requires_shared("bears")
    dm = _datamodule(["data=bears", f"data.root={root}"])
    assert dm.classes == ["bear", "not_bear"]
    sizes = dm.describe()["sizes"]
    assert sizes["train"] + sizes["valid"] == 256 + 188 and sizes["test"] == 63 + 52
    assert abs(sizes["valid"] - 0.2 * 444) <= 2
    counts = dm.counts()
    assert counts["test"] == {"bear": 63, "not_bear": 52}


def test_fish_frames_folders_map_to_fish_and_no_fish():
    root = requires_shared("fish", "video1_output")
    dm = _datamodule(["data=frames", f"data.root={root}", "data.reader.train=.",
                      "data.reader.class_map={positive: fish, testImages: fish, negative: no_fish}"])
    assert dm.classes == ["fish", "no_fish"]
    total = {k: sum(per_split[k] for per_split in dm.counts().values()) for k in dm.classes}
    split = dm.describe()["split"]
    assert sum(total.values()) + split["dropped_at_boundaries"] == 43 + 9 + 116
    assert total["no_fish"] <= 116 and total["fish"] <= 52 and total["fish"] + total["no_fish"] >= 168 - 4


def test_pets_stand_in_read_with_another_pattern():
    root = requires_shared("pets")
    dm = _datamodule(["data=name_regex", f"data.root={root}", "data.reader.folder=images",
                      r"data.reader.pattern='^(cat|dog)\.\d+\.jpg$'"])
    assert dm.classes == ["cat", "dog"]
    counts = {k: dm.counts()["train"][k] + dm.counts()["valid"][k] for k in dm.classes}
    assert counts == {"cat": 66, "dog": 64}
