"""Readers, video frames and a first pass on the real sample data in ../shared/data (skipped when
it is not there)."""

from __future__ import annotations

from pathlib import Path

import pytest

# -- strategies that do not leak (fishbear.data.splits.SplitPlan) -----------------------------------
from fishbear.core.errors import DataError  # noqa: E402
from fishbear.data.catalog import Sample
from fishbear.data.splits import (
    SplitPlan,  # noqa: E402
    split_off,
)
from fishbear.engine.experiment import build_datamodule
from tests.conftest import compose_train, requires_shared


def _datamodule(overrides):
    dm = build_datamodule(compose_train(overrides))
    dm.prepare_data()
    dm.setup()
    return dm


def _frame_numbers(samples) -> list[int]:
    return [int(s.image.stem.rsplit("_", 1)[1]) for s in samples]


def _samples(counts):
    return [Sample(Path(f"{c}_{i}.jpg"), c) for c, n in enumerate(counts) for i in range(n)]


def _people(n_people=10, per_person=6, classes=2):
    """person_<p>/img_<i>.jpg, class alternating by person and image."""
    return [Sample(Path(f"/data/person_{p:02d}/img_{i}.jpg"), (p + i) % classes)
            for p in range(n_people) for i in range(per_person)]


def _person(sample):
    return sample.image.parent.name


def test_time_split_of_the_fish_frames_puts_no_block_on_two_sides():
    """data=frames splits by time: every train frame precedes every valid frame, which precede
    every test frame, with data.gap frames dropped at each boundary."""
    root = requires_shared("fish", "video1_output")
    dm = _datamodule(["data=frames", f"data.root={root}", "data.reader.train=.", "data.gap=3",
                      "data.reader.class_map={positive: fish, testImages: fish, negative: no_fish}"])
    numbers = {name: _frame_numbers(dm.samples(name)) for name in ("train", "valid", "test")}
    assert max(numbers["train"]) < min(numbers["valid"]) and max(numbers["valid"]) < min(numbers["test"])
    assert min(numbers["valid"]) - max(numbers["train"]) == 3 + 1
    assert min(numbers["test"]) - max(numbers["valid"]) == 3 + 1
    every = sorted(n for ns in numbers.values() for n in ns)
    assert len(every) == 168 - 6 and len(set(every)) == len(every)
    info = dm.describe()["split"]
    assert info["strategy"] == "time" and info["dropped_at_boundaries"] == 6
    assert info["order_range"]["test"] == [float(min(numbers["test"])), 168.0]
    # the static camera's empty frames are alike: counted, not warned about (data.duplicates=report)
    assert dm.describe()["duplicates"]["policy"] == "report"


def test_kfold_over_time_blocks_of_the_fish_frames_covers_every_frame_once():
    root = requires_shared("fish", "video1_output")
    held = []
    for fold in range(4):
        dm = _datamodule(["data=frames", f"data.root={root}", "data.reader.train=.", "data.split=kfold",
                          "data.folds=4", f"data.fold={fold}", "data.gap=0",
                          "data.reader.class_map={positive: fish, testImages: fish, negative: no_fish}"])
        test = _frame_numbers(dm.samples("test"))
        assert max(test) - min(test) == len(test) - 1  # one contiguous block of seconds
        assert not set(test) & set(_frame_numbers(dm.samples("train")) + _frame_numbers(dm.samples("valid")))
        held += test
    assert sorted(held) == list(range(1, 169))


def test_camvid_split_by_sequence_puts_no_sequence_on_two_sides():
    root = requires_shared("camvid")
    dm = _datamodule(["data=camvid", f"data.root={root}"])
    sequences = {name: {s.image.name.split("_")[0] for s in dm.samples(name)} for name in ("train", "valid", "test")}
    assert all(sequences.values())
    assert not sequences["train"] & sequences["valid"] and not sequences["train"] & sequences["test"]
    assert not sequences["valid"] & sequences["test"]
    assert set().union(*sequences.values()) == {"0001TP", "0006R0", "0016E5", "Seq05VD"}
    info = dm.describe()["split"]
    assert info["strategy"] == "group" and info["groups_in_two_splits"] == []
    assert sum(info["groups"].values()) == 4


def test_camvid_folders_as_shipped_share_sequences_and_the_report_says_so():
    """SegNet's own train/val/test folders put 0016E5 and 0001TP on two sides: kept when asked
    (pool_folders=false), and named in the split's description."""
    root = requires_shared("camvid")
    dm = _datamodule(["data=camvid", f"data.root={root}", "data.pool_folders=false"])
    shared = {entry["group"] for entry in dm.describe()["split"]["groups_in_two_splits"]}
    assert shared == {"0016E5", "0001TP"}


def test_stratified_fraction_per_class_and_disjoint():
    samples = _samples([50, 10, 2])
    keep, held = split_off(samples, 0.2, seed=1, stratify=lambda s: s.target)
    assert len(keep) + len(held) == len(samples)
    assert not set(keep) & set(held)
    per_class = [sum(s.target == c for s in held) for c in range(3)]
    assert per_class == [10, 2, 1]  # the 2-image class keeps one on each side


def test_seeded_and_seed_sensitive():
    samples = _samples([40, 40])
    a = split_off(samples, 0.25, seed=3)[1]
    assert a == split_off(samples, 0.25, seed=3)[1]
    assert a != split_off(samples, 0.25, seed=4)[1]


def test_fraction_out_of_range():
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_off(_samples([3]), 1.5, seed=0)


def test_group_split_puts_every_group_on_one_side_and_keeps_classes():
    samples = _people(12, 6)
    plan = SplitPlan("group", valid_pct=0.25, test_pct=0.25, group_pattern=r"(person_\d+)/")
    splits = plan.apply({"train": samples}, Path("/data"), lambda s: s.target)
    people = {name: {_person(s) for s in part} for name, part in splits.items()}
    assert not people["train"] & people["valid"] and not people["train"] & people["test"]
    assert not people["valid"] & people["test"]
    assert sum(len(p) for p in splits.values()) == len(samples)
    assert all({s.target for s in part} == {0, 1} for part in splits.values())
    assert plan.info["groups"] == {name: len(p) for name, p in people.items()}
    assert plan.info["groups_in_two_splits"] == []
    groups = plan.groups_of(splits["test"], Path("/data"))
    assert groups == [_person(s) for s in splits["test"]]


def test_group_key_from_a_csv_column(tmp_path):
    samples = [Sample(tmp_path / f"{i}.jpg", i % 2) for i in range(20)]
    (tmp_path / "groups.csv").write_text("file,site\n" + "".join(f"{i}.jpg,site{i // 4}\n" for i in range(20)))
    plan = SplitPlan("group", valid_pct=0.2, group_csv="groups.csv", group_column="site")
    splits = plan.apply({"train": samples}, tmp_path, None)
    sites = {name: {int(s.image.stem) // 4 for s in part} for name, part in splits.items()}
    assert not sites["train"] & sites["valid"] and len(sites["valid"]) == 1


def test_group_pattern_that_finds_nothing_names_the_file():
    with pytest.raises(DataError, match=r"img_0\.jpg.*group_pattern"):
        SplitPlan("group", group_pattern=r"(site_\d+)/").apply({"train": _people(3, 2)}, Path("/data"), None)
    with pytest.raises(DataError, match="needs data.group_pattern"):
        SplitPlan("group")


def test_a_single_group_cannot_be_split():
    samples = [Sample(Path(f"/data/a/{i}.jpg"), 0) for i in range(8)]
    with pytest.raises(DataError, match="1 group"):
        SplitPlan("group", group_pattern=r"^(a)/").apply({"train": samples}, Path("/data"), None)


def test_time_split_orders_by_the_frame_number_and_drops_the_gap():
    samples = [Sample(Path(f"/v/frame_{n}.jpg"), n % 2) for n in range(1, 101)]
    plan = SplitPlan("time", valid_pct=0.2, test_pct=0.2, gap=3)
    splits = plan.apply({"train": samples[::-1]}, Path("/v"), lambda s: s.target)
    numbers = {name: sorted(int(s.image.stem.split("_")[1]) for s in part) for name, part in splits.items()}
    assert numbers["test"] == list(range(81, 101))
    # valid_pct is a fraction of what test left (as for the other strategies): 15 of 77
    assert numbers["valid"] == list(range(63, 78)) and numbers["train"] == list(range(1, 60))
    assert plan.info["dropped_at_boundaries"] == 6
    assert plan.info["order_range"] == {"train": [1.0, 59.0], "valid": [63.0, 77.0], "test": [81.0, 100.0]}
    blocks = plan.groups_of(splits["test"], Path("/v"))
    assert len(set(blocks)) == 7  # 20 frames in runs of ceil(20 ** (1/3)) = 3


def test_time_order_from_a_frames_csv(tmp_path):
    samples = [Sample(tmp_path / f"shot_{c}.jpg", 0) for c in "abcdefghij"]
    (tmp_path / "frames.csv").write_text("frame,time,file\n" + "".join(
        f"{i},{9 - i}.0,shot_{c}.jpg\n" for i, c in enumerate("abcdefghij")))
    splits = SplitPlan("time", valid_pct=0.3, order_csv="frames.csv").apply({"train": samples}, tmp_path, None)
    assert sorted(s.image.stem for s in splits["valid"]) == ["shot_a", "shot_b", "shot_c"]  # the latest times


@pytest.mark.parametrize("grouped", [False, True])
def test_kfold_folds_are_disjoint_and_cover_the_data(grouped):
    samples = _people(10, 5)
    held = []
    for fold in range(5):
        plan = SplitPlan("kfold", folds=5, fold=fold, valid_pct=0.2,
                         group_pattern=r"(person_\d+)/" if grouped else None)
        splits = plan.apply({"train": samples}, Path("/data"), lambda s: s.target)
        assert plan.info["held_out_as"] == "test"
        assert not {s.image for s in splits["test"]} & {s.image for s in splits["train"] + splits["valid"]}
        assert len(splits["train"]) + len(splits["valid"]) + len(splits["test"]) == len(samples)
        if grouped:
            assert not {_person(s) for s in splits["test"]} & {_person(s) for s in splits["train"]}
        held += [s.image for s in splits["test"]]
    assert sorted(held) == sorted(s.image for s in samples)


def test_kfold_with_a_test_folder_holds_the_fold_out_as_validation():
    samples = _people(5, 4)
    splits = SplitPlan("kfold", folds=4, fold=1).apply({"train": samples, "test": samples[:2]}, Path("/data"),
                                                       lambda s: s.target)
    assert splits["test"] == samples[:2] and len(splits["valid"]) == 5


def test_folders_on_disk_win_unless_pooled():
    train, valid = _people(4, 3), [Sample(Path("/data/person_09/v.jpg"), 0)]
    kept = SplitPlan("group", group_pattern=r"(person_\d+)/").apply({"train": train, "valid": valid}, Path("/data"), None)
    assert kept["valid"] == valid and "test" not in kept
    pooled = SplitPlan("group", group_pattern=r"(person_\d+)/", pool_folders=True, valid_pct=0.25)
    splits = pooled.apply({"train": train, "valid": valid}, Path("/data"), None)
    assert sum(len(p) for p in splits.values()) == len(train) + 1 and splits["valid"] != valid


def test_unknown_strategy_is_refused():
    with pytest.raises(DataError, match="data.split='random'"):
        SplitPlan("random")
