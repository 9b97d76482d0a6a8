import pytest
import torch
from hydra.utils import instantiate

from fishbear.data.datamodule import ImageDataModule
from fishbear.data.readers import ImageFolderReader
from fishbear.data.transforms import denormalize
from fishbear.errors import DataError

from .conftest import TINY, compose_train


@pytest.fixture
def shapes(tmp_path):
    cfg = compose_train(TINY, tmp_path)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_shapes_batches_are_normalised_dicts(shapes):
    assert shapes.classes == ["circle", "square", "star", "triangle"] and shapes.num_classes == 4
    batch = next(iter(shapes.train_dataloader()))
    assert batch["image"].shape == (8, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["target"].dtype == torch.int64 and batch["index"].shape == (8,)
    assert -3 < batch["image"].mean() < 3
    shown = denormalize(batch["image"], shapes.mean, shapes.std)
    assert shown.min() >= 0 and shown.max() <= 1
    assert {k: v for k, v in shapes.describe()["sizes"].items()} == {"train": 32, "valid": 12, "test": 16}


def test_validation_is_split_off_train_when_missing(tmp_path, shapes):
    root = shapes.root
    dm = ImageDataModule(root=root, reader=ImageFolderReader(valid=None), valid_pct=0.25, num_workers=0)
    dm.setup()
    train, valid = dm.samples("train"), dm.samples("valid")
    assert len(train) == 24 and len(valid) == 8
    assert not {s.image for s in train} & {s.image for s in valid}
    assert sorted(s.target for s in valid) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_normalisation_follows_the_network(shapes):
    shapes.set_normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert shapes.dataset("valid").transform is not None
    assert shapes.describe()["mean"] == [0.5, 0.5, 0.5]


def test_loader_settings(shapes):
    shapes.num_workers = 1
    loader = shapes.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 1
    assert loader.pin_memory == torch.cuda.is_available()


def test_missing_root_names_the_folder_and_the_setting(tmp_path):
    dm = ImageDataModule(root=tmp_path / "nowhere", reader=ImageFolderReader(), name="folder")
    with pytest.raises(DataError, match=r"nowhere does not exist\. Set data\.root="):
        dm.prepare_data()
