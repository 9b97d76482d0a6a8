"""Runs that cannot mean anything are refused before training, with the file and the fix: one
class, an empty split, a data root that is a file, an image too large to decode, an unreadable
folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fishbear.core.errors import DataError
from fishbear.engine.data_config import image_data
from fishbear.engine.experiment import build_datamodule
from fishbear.formats.imagefolder import ImageFolderReader
from tests.conftest import TINY, compose_train
from tests.fixtures import decompression_bomb


@pytest.fixture
def shapes(tmp_path):
    cfg = compose_train(TINY, tmp_path)
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    return dm


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


def test_batches_travel_as_uint8_and_are_normalised_on_the_device(shapes):
    assert shapes.classes == ["circle", "square", "star", "triangle"] and shapes.num_classes == 4
    batch = next(iter(shapes.train_dataloader()))
    # a quarter of float32's bytes cross from host to device
    assert batch["image"].shape == (8, 3, 32, 32) and batch["image"].dtype == torch.uint8
    assert batch["image"].element_size() * batch["image"].numel() == 8 * 3 * 32 * 32
    assert batch["target"].dtype == torch.int64 and batch["index"].shape == (8,)
    raw = batch["image"].clone()
    fed = shapes.on_after_batch_transfer(batch, 0)   # what Lightning calls once the batch is on the device
    assert fed["image"].dtype == torch.float32 and -3 < fed["image"].mean() < 3
    shown = shapes.normalize.undo(fed["image"])
    assert shown.min() >= 0 and shown.max() <= 1
    assert torch.allclose(shown * 255, raw.float(), atol=1e-3)
    assert {k: v for k, v in shapes.describe()["sizes"].items()} == {"train": 32, "valid": 12, "test": 16}


def test_validation_is_split_off_train_when_missing(tmp_path, shapes):
    root = shapes.root
    dm = image_data(root=root, reader=ImageFolderReader(valid=None), valid_pct=0.25, num_workers=0)
    dm.setup()
    train, valid = dm.samples("train"), dm.samples("valid")
    assert len(train) == 24 and len(valid) == 8
    assert not {s.image for s in train} & {s.image for s in valid}
    assert sorted(s.target for s in valid) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_normalisation_follows_the_network(shapes):
    import dataclasses

    shapes.use_feed(dataclasses.replace(shapes.feed, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    raw = shapes.dataset("valid").samples[0].image
    from PIL import Image

    pixels = torch.as_tensor(np.asarray(Image.open(raw).convert("RGB").resize((32, 32)), dtype=np.float32) / 255)
    normalised = shapes.on_after_batch_transfer({"image": shapes.dataset("valid")[0]["image"][None]}, 0)["image"]
    # the statistics given are the ones applied: (pixel - 0.5) / 0.25
    assert normalised.mean().item() == pytest.approx(((pixels - 0.5) / 0.25).mean().item(), abs=0.05)
    assert shapes.describe()["mean"] == [0.5, 0.5, 0.5]


def test_loader_settings(shapes):
    shapes.loader = dataclasses.replace(shapes.loader, num_workers=1)
    loader = shapes.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 1
    assert loader.pin_memory == torch.cuda.is_available()


def test_missing_root_names_the_folder_and_the_setting(tmp_path):
    dm = image_data(root=tmp_path / "nowhere", reader=ImageFolderReader(), name="folder")
    with pytest.raises(DataError, match=r"nowhere does not exist\. Set data\.root="):
        dm.prepare_data()


def test_bad_images_are_skipped_and_counted_when_asked(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        for i in range(3):
            path = tmp_path / "train" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8)).save(path)
    (tmp_path / "train" / "a" / "3.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp_path / "train" / "b" / "9.png").write_text("not a png")
    dm = image_data(root=tmp_path, reader=ImageFolderReader(), on_bad_image="skip", num_workers=0)
    dm.setup()
    skipped = dm.describe()["skipped"]
    assert sorted(s["file"].rsplit("/", 2)[-2] + "/" + s["file"].rsplit("/", 1)[-1] for s in skipped) == ["a/3.jpg", "b/9.png"]
    assert len(dm.samples("train")) + len(dm.samples("valid")) == 6
    # by default every file's header is read at setup: the run stops before training, naming the file
    strict = image_data(root=tmp_path, reader=ImageFolderReader(), num_workers=0)
    with pytest.raises(DataError, match=r"Image file .*(3\.jpg|9\.png) \((train|valid) split\) cannot be read as an "
                                        r"image.*on_bad_image=skip"):
        strict.setup()
    with pytest.raises(DataError, match="use 'error' or 'skip'"):
        image_data(root=tmp_path, reader=ImageFolderReader(), on_bad_image="ignore")


@pytest.mark.parametrize("workers", [0, 1])
def test_the_same_seed_gives_the_same_augmented_batches(tmp_path, workers):
    """albumentations was seeded from the OS: four runs with one seed scored four accuracies."""
    import lightning as L

    def first_batches(seed):
        cfg = compose_train([*TINY, f"data.num_workers={workers}"], tmp_path)
        dm = build_datamodule(cfg)
        dm.prepare_data()
        dm.setup("fit")
        L.seed_everything(seed, workers=True, verbose=False)
        loader = dm.train_dataloader()
        return [batch["image"] for batch, _ in zip(loader, range(2))]

    same = first_batches(7), first_batches(7)
    assert all(torch.equal(a, b) for a, b in zip(*same))
    assert not torch.equal(first_batches(8)[0], same[0][0])


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
