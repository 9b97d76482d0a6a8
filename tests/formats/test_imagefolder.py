from __future__ import annotations

import pytest
from PIL import Image

from fishbear.core.errors import DataError
from fishbear.formats.imagefolder import ImageFolderReader
from fishbear.formats.name_regex import NameRegexReader


def _image(path, colour=(255, 0, 0), size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def tree(tmp_path):
    for split, n in (("train", 3), ("test", 1)):
        for cls in ("dog", "cat"):
            for i in range(n):
                _image(tmp_path / split / cls / f"{i}.jpg")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    return tmp_path


@pytest.fixture
def pets(tmp_path):
    """Oxford-IIIT Pets naming: breed_N.jpg, cats capitalised."""
    for name in ("Abyssinian_1", "Abyssinian_12", "great_pyrenees_173", "great_pyrenees_2", "pug_7", "pug_8"):
        _image(tmp_path / "images" / f"{name}.jpg")
    return tmp_path


def test_reads_splits_and_sorted_classes(tree):
    catalog = ImageFolderReader()(tree)
    assert catalog.classes == ["cat", "dog"]
    assert set(catalog.splits) == {"train", "test"}  # no valid/ folder: the data module splits one off
    assert len(catalog.splits["train"]) == 6 and len(catalog.splits["test"]) == 2
    assert {s.target for s in catalog.splits["train"] if s.image.parent.name == "dog"} == {1}
    assert all(s.image.suffix == ".jpg" for s in catalog.splits["train"])  # notes.txt left out


def test_class_map_merges_folders(tmp_path):
    for folder in ("positive", "testImages", "negative"):
        _image(tmp_path / "train" / folder / "a.jpg")
    reader = ImageFolderReader(class_map={"positive": "fish", "testImages": "fish", "negative": "no_fish"})
    catalog = reader(tmp_path)
    assert catalog.classes == ["fish", "no_fish"]
    assert sorted(s.target for s in catalog.splits["train"]) == [0, 0, 1]


def test_missing_train_folder_names_the_folder_and_the_layout(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match=r"No training folder .*train.*<class name>.*holds: images"):
        ImageFolderReader()(tmp_path)


def test_empty_class_folder_is_an_error_naming_it(tree):
    (tree / "train" / "bird").mkdir()
    with pytest.raises(DataError, match=r"train/bird holds no image files"):
        ImageFolderReader()(tree)


def test_class_in_test_but_not_in_train(tree):
    _image(tree / "test" / "bird" / "0.jpg")
    with pytest.raises(DataError, match=r"test/bird is a class folder that .*train does not have"):
        ImageFolderReader()(tree)


def test_name_regex_reader_labels_from_file_names(pets):
    catalog = NameRegexReader(pattern=r"^(.+)_\d+\.jpg$", folder="images")(pets)
    assert catalog.classes == ["Abyssinian", "great_pyrenees", "pug"]
    assert list(catalog.splits) == ["train"] and len(catalog.splits["train"]) == 6
    named = NameRegexReader(pattern=r"^(?P<breed>[a-z_]+)_\d+\.jpg$", folder="images", group="breed",
                            skip_unmatched=True)(pets)
    assert named.classes == ["great_pyrenees", "pug"] and len(named.skipped) == 2


def test_regex_matching_no_file_shows_names_and_the_fix(pets):
    with pytest.raises(DataError, match=r"matches none of the 6 image files .*e\.g\. Abyssinian_1\.jpg"):
        NameRegexReader(pattern=r"^(cat|dog)\.\d+\.jpg$", folder="images")(pets)
    with pytest.raises(DataError, match=r"2 of 6 image files .* do not match .*skip_unmatched=true"):
        NameRegexReader(pattern=r"^([a-z_]+)_\d+\.jpg$", folder="images")(pets)
    with pytest.raises(DataError, match="not a valid regular expression"):
        NameRegexReader(pattern="(unclosed", folder="images")(pets)


def test_a_class_with_one_image_is_refused(pets):
    from fishbear.engine.data_config import image_data

    _image(pets / "images" / "sphynx_1.jpg")
    dm = image_data(root=pets, reader=NameRegexReader(pattern=r"^(.+)_\d+\.jpg$", folder="images"))
    with pytest.raises(DataError, match=r"sphynx have a single image .*sphynx_1\.jpg"):
        dm.setup()
