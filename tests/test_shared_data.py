"""Readers, video frames and a first pass on the real sample data in ../shared/data (skipped when
it is not there)."""

from fishbear.engine.experiment import build_datamodule

from .conftest import compose_train, requires_shared


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


def _frame_numbers(samples) -> list[int]:
    return [int(s.image.stem.rsplit("_", 1)[1]) for s in samples]


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


def test_pets_stand_in_read_with_another_pattern():
    root = requires_shared("pets")
    dm = _datamodule(["data=name_regex", f"data.root={root}", "data.reader.folder=images",
                      r"data.reader.pattern='^(cat|dog)\.\d+\.jpg$'"])
    assert dm.classes == ["cat", "dog"]
    counts = {k: dm.counts()["train"][k] + dm.counts()["valid"][k] for k in dm.classes}
    assert counts == {"cat": 66, "dog": 64}


FISH_LABELS = {"positive": "fish", "testImages": "fish", "negative": "no_fish"}


def _fish_frames(root) -> dict:
    """Frame number (second of the video) -> (file, label), from video1_frame_<N>.jpg."""
    frames = {}
    for folder, label in FISH_LABELS.items():
        for path in (root / folder).glob("video1_frame_*.jpg"):
            frames[int(path.stem.rsplit("_", 1)[1])] = (path, label)
    return frames


def _fish_video(frames: dict, numbers: list, path):
    import numpy as np
    from PIL import Image

    from .conftest import write_video

    images = [np.asarray(Image.open(frames[n][0]).convert("RGB")) for n in numbers]
    return write_video(path, images, fps=1)


def test_frames_from_a_video_made_of_the_real_fish_frames(tmp_path):
    import csv

    from fishbear.frames import main as frames_main

    frames = _fish_frames(requires_shared("fish", "video1_output"))
    assert len(frames) == 168 and sorted(frames) == list(range(1, 169))
    video = _fish_video(frames, list(range(1, 13)), tmp_path / "video1.mp4")
    table = frames_main([f"video={video}", f"out={tmp_path / 'frames'}", "every=4", "enhance=true"])
    rows = list(csv.DictReader(table.open()))
    assert [(r["frame"], r["time"]) for r in rows] == [("0", "0.000"), ("4", "4.000"), ("8", "8.000")]
    from PIL import Image

    assert Image.open(tmp_path / "frames" / rows[1]["file"]).size == (600, 336)
