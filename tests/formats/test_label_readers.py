"""Readers of tags, masks and points: the real formats parse, bad label files are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fishbear.core.errors import DataError
from fishbear.formats.biwi import BiwiReader
from fishbear.formats.masks import MaskFolderReader
from fishbear.formats.points_csv import PointsCsvReader
from fishbear.formats.tags_csv import TagCsvReader
from tests.conftest import requires_shared
from tests.fixtures import write_biwi, write_camvid, write_planet


def _tiles(folder, names, size=(8, 8)):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", size).save(folder / f"{name}.jpg")


def test_planet_csv_vocabulary_and_tags(tmp_path):
    root = write_planet(tmp_path, n=12)
    catalog = TagCsvReader()(root)
    assert catalog.classes == ["blue", "green", "red"] and catalog.kind == "multilabel"
    rows = (root / "train_v2.csv").read_text().splitlines()[1:]
    first = rows[0].split(",")[1].split()
    assert [catalog.classes[i] for i in catalog.splits["train"][0].target] == sorted(first)


def test_real_planet_labels_parse_with_tiles_named_after_rows(tmp_path):
    csv_file = requires_shared("planet", "train_v2.csv")
    names = [line.split(",")[0] for line in csv_file.read_text().splitlines()[1:]]
    _tiles(tmp_path / "train-jpg", names)
    (tmp_path / "train_v2.csv").write_bytes(csv_file.read_bytes())
    catalog = TagCsvReader()(tmp_path)
    assert len(catalog.splits["train"]) == len(names) >= 1000  # train_0 ... (the README says 1,000 rows)
    assert set(catalog.classes) <= {"primary", "clear", "agriculture", "road", "water", "partly_cloudy", "cultivation",
                                    "habitation", "haze", "cloudy", "bare_ground", "selective_logging", "artisinal_mine",
                                    "blooming", "slash_burn", "blow_down", "conventional_mine"}
    second = catalog.splits["train"][1]
    assert second.image.name == "train_1.jpg"
    assert [catalog.classes[i] for i in second.target] == ["agriculture", "clear", "primary", "water"]


def test_tag_csv_errors_name_the_line_and_the_fix(tmp_path):
    _tiles(tmp_path / "train-jpg", ["a", "b"])
    (tmp_path / "train_v2.csv").write_text("image_name,tags\na,clear\nb,\n")
    with pytest.raises(DataError, match=r"train_v2.csv, line 3: image 'b' has an empty tag list"):
        TagCsvReader()(tmp_path)
    (tmp_path / "train_v2.csv").write_text("image_name,tags\na,clear\nzz,haze\n")
    with pytest.raises(DataError, match=r"names 1 image\(s\) not found in .*train-jpg \(e.g. line 3: 'zz'\)"):
        TagCsvReader()(tmp_path)
    (tmp_path / "train_v2.csv").write_text("name,labels\na,clear\n")
    with pytest.raises(DataError, match=r"no column\(s\) image_name, tags \(it has: name, labels\)"):
        TagCsvReader()(tmp_path)


def test_real_camvid_segnet_layout(tmp_path):
    root = requires_shared("camvid")
    reader = MaskFolderReader(images={"train": "CamVid/train", "valid": "CamVid/val", "test": "CamVid/test"},
                              masks={"train": "CamVid/trainannot", "valid": "CamVid/valannot", "test": "CamVid/testannot"},
                              mask_name="{name}")
    catalog = reader(root)
    assert {k: len(v) for k, v in catalog.splits.items()} == {"train": 53, "valid": 13, "test": 15}
    assert catalog.classes[0] == "Sky" and catalog.classes[11] == "Unlabelled"
    sample = catalog.splits["train"][0]
    assert sample.target.parent.name == "trainannot" and sample.target.name == sample.image.name


def test_real_camvid_batches_through_the_data_module(tmp_path):
    from fishbear.engine.experiment import build_datamodule
    from tests.conftest import compose_train

    root = requires_shared("camvid")
    cfg = compose_train(["data=camvid", f"data.root={root}", "data.num_workers=0", "data.batch_size=4"], tmp_path)
    data = build_datamodule(cfg)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (4, 3, 192, 256) and batch["target"].shape == (4, 192, 256)
    assert int(batch["target"].max()) <= 11 and batch["size"][0].tolist() == [360, 480]
    assert cfg.task.void == "Unlabelled"


def test_fastai_camvid_layout_with_valid_txt(tmp_path):
    root = write_camvid(tmp_path, n=5)
    catalog = MaskFolderReader(valid_list="valid.txt")(root)
    assert catalog.classes == ["Sky", "Road", "Void"]
    assert [s.image.name for s in catalog.splits["valid"]] == ["0001TP_000004.png"]
    assert catalog.splits["train"][0].target.name == "0001TP_000000_P.png"


def test_mask_errors_name_the_files(tmp_path):
    from fishbear.data.images import load_mask

    root = write_camvid(tmp_path, n=3)
    Image.new("P", (10, 10)).save(root / "labels" / "0001TP_000001_P.png")
    with pytest.raises(DataError, match=r"Mask .*0001TP_000001_P.png is 10x10 but its image .*0001TP_000001.png is 32x24"):
        MaskFolderReader()(root)
    (root / "labels" / "0001TP_000001_P.png").unlink()
    with pytest.raises(DataError, match=r"No mask for image .*0001TP_000001.png: expected .*0001TP_000001_P.png"):
        MaskFolderReader()(root)
    bad = root / "labels" / "0001TP_000000_P.png"
    Image.fromarray(np.full((24, 32), 7, dtype=np.uint8), mode="L").save(bad)
    with pytest.raises(DataError, match=r"has pixel value\(s\) \[7\] but codes.txt names only 3 classes"):
        load_mask(bad, root / "images" / "0001TP_000000.png", (24, 32), 3)
    Image.new("RGB", (32, 24)).save(bad)
    with pytest.raises(DataError, match=r"is a RGB image; a mask must hold one class index per pixel"):
        load_mask(bad, root / "images" / "0001TP_000000.png", (24, 32), 3)


def test_biwi_projects_the_head_centre_like_the_lesson(tmp_path):
    expected = write_biwi(tmp_path, {"01": 3, "13": 2})
    catalog = BiwiReader()(tmp_path)
    assert catalog.classes == ["head"] and len(catalog.splits["train"]) == 3 and len(catalog.splits["valid"]) == 2
    found = {s.image: s.target[0] for split in catalog.splits.values() for s in split}
    for image, (x, y) in expected:
        assert found[image] == pytest.approx((x, y), abs=1e-3)


def test_biwi_errors_say_the_file_and_line(tmp_path):
    write_biwi(tmp_path, {"01": 2})
    pose = tmp_path / "01" / "frame_00003_pose.txt"
    pose.write_text("1 0 0\n0 1 0\n0 0 1\n\n12.5 x 900\n")
    with pytest.raises(DataError, match=r"frame_00003_pose.txt, line 5: '12.5 x 900' is not a row of numbers"):
        BiwiReader()(tmp_path)
    pose.write_text("1 0 0\n0 1 0\n0 0 1\n\n5000 0 900\n")  # 5 m to the side at 0.9 m: off the frame
    with pytest.raises(DataError, match=r"point \(3196.0, 240.5\) lies outside image .*frame_00003_rgb.jpg \(640x480\)"):
        BiwiReader()(tmp_path)
    (tmp_path / "01" / "rgb.cal").write_text("517.679 0\n")
    with pytest.raises(DataError, match=r"rgb.cal: the first three lines must be the 3x3 camera matrix"):
        BiwiReader()(tmp_path)


def test_points_csv_reads_pixels_and_refuses_bad_rows(tmp_path):
    _tiles(tmp_path / "images", ["a", "b"], size=(20, 10))
    (tmp_path / "points.csv").write_text("image,x1,y1,x2,y2\na.jpg,1,2,3,4\nb,5.5,6,7,8\n")
    catalog = PointsCsvReader(names=["left", "right"])(tmp_path)
    assert catalog.classes == ["left", "right"]
    assert catalog.splits["train"][1].target.tolist() == [[5.5, 6.0], [7.0, 8.0]]
    (tmp_path / "points.csv").write_text("image,x1,y1\na.jpg,1,two\n")
    with pytest.raises(DataError, match=r"points.csv, line 2: every x<i>,y<i> column must hold a number"):
        PointsCsvReader()(tmp_path)
    (tmp_path / "points.csv").write_text("image,x1,y1\na.jpg,25,2\n")
    with pytest.raises(DataError, match=r"points.csv, line 2: point \(25.0, 2.0\) lies outside image .*a.jpg \(20x10\)"):
        PointsCsvReader()(tmp_path)


def test_a_tag_listed_twice_counts_once_with_a_warning(tmp_path, caplog):
    _tiles(tmp_path / "train-jpg", ["a"])
    (tmp_path / "train_v2.csv").write_text("image_name,tags\na,clear cultivation cultivation\n")  # as in Planet's CSV
    catalog = TagCsvReader()(tmp_path)
    assert catalog.splits["train"][0].target == (0, 1)
    assert "1 row(s) list a tag twice (e.g. line 2, a)" in caplog.text


def test_biwi_default_config_tests_on_people_the_model_never_saw(tmp_path):
    """data=biwi splits by person: person 13 validates (its folder), whole other people are held
    out for test, none of them also in train."""
    from fishbear.engine.experiment import build_datamodule
    from tests.conftest import compose_train

    people = {f"{p:02d}": 3 for p in range(1, 25)}
    write_biwi(tmp_path / "biwi_head_pose", people)
    dm = build_datamodule(compose_train(["data=biwi", f"data.root={tmp_path}", "data.source=null", "data.num_workers=0"]))
    dm.setup()
    who = {name: {s.image.parent.name for s in dm.samples(name)} for name in ("train", "valid", "test")}
    assert who["valid"] == {"13"} and who["test"] and not who["test"] & who["train"]
    assert len(who["train"]) + len(who["test"]) == 23
    assert dm.describe()["split"]["groups"] == {name: len(p) for name, p in who.items()}
