import dataclasses

import numpy as np
import pytest
import torch

from fishbear.core.errors import DataError
from fishbear.engine.datamodule import image_data
from fishbear.engine.experiment import build_datamodule
from fishbear.formats.imagefolder import ImageFolderReader

from .conftest import TINY, compose_train


@pytest.fixture
def shapes(tmp_path):
    cfg = compose_train(TINY, tmp_path)
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    return dm


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
