"""``fishbear adapt``: a classifier trained on clear water, then shown its test pictures with a colour
cast and low contrast (a new day's water): each method lifts the accuracy on the cast pictures above
the unadapted model's by a margin computed from the test set's size; the source run is untouched;
the adapted checkpoint's provenance names its source, footage and methods; predict, frames, the
export's standalone predictor and serve answer the same for it; what cannot apply is one line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fishbear.adapt import main as adapt_main
from fishbear.engine.inference import Predictor
from fishbear.train import train
from tests.conftest import compose_train, file_digests, one_error

SIDES = ("left", "right")


def blob_picture(rng: np.random.Generator, side: str) -> np.ndarray:
    """A 32 px picture of textured water with one round blob in its left or right half (the class)."""
    picture = np.clip(rng.uniform(0.2, 0.8, 3) * 255 + rng.normal(0, 25, (32, 32, 3)), 0, 255)
    y, x = rng.integers(6, 26), rng.integers(4, 12) + (16 if side == "right" else 0)
    rows, cols = np.mgrid[:32, :32]
    picture[(rows - y) ** 2 + (cols - x) ** 2 <= 16] = rng.uniform(0, 255, 3)
    return picture.astype(np.uint8)


def cast(picture: np.ndarray) -> np.ndarray:
    """Yellow-green murky water: each channel's contrast cut to a tenth or a fifth, and shifted."""
    x = picture.astype(np.float32) / 255 * np.array([0.1, 0.2, 0.1]) + np.array([0.65, 0.55, 0.2])
    return (x.clip(0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """A classifier of the blob's side trained on clear water (3 epochs, no flips: a flip would swap
    the sides), and 400 test pictures as they were and cast, the cast ones written as the new footage."""
    from PIL import Image

    tmp = tmp_path_factory.mktemp("adapt")
    rng = np.random.default_rng(0)
    for split, count in (("train", 80), ("valid", 10), ("test", 200)):
        for side in SIDES:
            folder = tmp / "data" / split / side
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(blob_picture(rng, side)).save(folder / f"{i}.png")
    report = train(compose_train(["data=folder", f"data.root={tmp / 'data'}", "data.image_size=32", "data.augment=null",
                                  "data.batch_size=16", "data.num_workers=0", "trainer.max_epochs=3", "logger=none",
                                  "trainer.num_sanity_val_steps=0", "seed=1", "model=convnet"], tmp / "run"))
    from fishbear.data.images import load_rgb

    files = sorted((tmp / "data" / "test").rglob("*.png"))
    pictures, labels = [load_rgb(f) for f in files], [f.parent.name for f in files]
    footage = tmp / "new_day" / "cam1"
    footage.mkdir(parents=True)
    for i, picture in enumerate(pictures):
        Image.fromarray(cast(picture)).save(footage / f"frame_{i:03d}.png")
    return tmp, report, pictures, labels


def accuracy(ckpt, pictures, labels) -> float:
    answers = Predictor.from_checkpoint(ckpt).predict_batch(pictures)
    return float(np.mean([a["label"] == label for a, label in zip(answers, labels)]))


@pytest.mark.parametrize("method", ["colour", "bn", "tent", "[colour,bn]", "[colour,pseudo]"])
def test_each_method_lifts_the_accuracy_on_the_new_footage_and_leaves_the_source_run_alone(method, shifted, tmp_path):
    tmp, report, pictures, labels = shifted
    source = tmp / "run" / "checkpoints" / "best.ckpt"
    before = file_digests(tmp / "run")
    cast_pictures = [cast(p) for p in pictures]
    unadapted = accuracy(source, cast_pictures, labels)
    margin = 2 * math.sqrt(unadapted * (1 - unadapted) / len(labels))  # two binomial standard errors
    assert accuracy(source, pictures, labels) - unadapted > margin, "the cast must hurt the model to begin with"
    out = tmp_path / "adapted"
    done = adapt_main([f"ckpt={source}", f"frames={tmp / 'new_day'}", f"method={method}", f"out={out}"])
    adapted = accuracy(out / "checkpoints" / "best.ckpt", cast_pictures, labels)
    assert adapted - unadapted > margin, (method, unadapted, adapted)
    assert file_digests(tmp / "run") == before
    written = json.loads((out / "adapt.json").read_text())
    assert written["methods"] == done["methods"] == [m for m in ("colour", "bn", "tent", "pseudo")
                                                     if m in method.strip("[]").split(",")]
    from fishbear.engine.checkpoint import read_meta

    provenance = read_meta(out / "checkpoints" / "best.ckpt").provenance
    assert provenance.adapted["from"] == str(source.absolute())
    assert provenance.adapted["footage"]["pictures"] == len(labels) and len(provenance.adapted["footage"]["sha256"]) == 64
    assert provenance.run == read_meta(source).provenance.run  # still the run it was trained in


def test_colour_is_folded_into_the_normalisation_every_consumer_reads(shifted, tmp_path):
    """The map lives in the checkpoint's mean and std: the network's weights are the source's, and the
    export's standalone predictor (no PyTorch) answers as predict does."""
    import torch

    from fishbear.engine.checkpoint import load_checkpoint, read_meta

    tmp, _, pictures, labels = shifted
    source = tmp / "run" / "checkpoints" / "best.ckpt"
    out = tmp_path / "adapted"
    adapt_main([f"ckpt={source}", f"frames={tmp / 'new_day'}", "method=colour", f"out={out}"])
    old, new = load_checkpoint(source), load_checkpoint(out / "checkpoints" / "best.ckpt")
    assert all(torch.equal(old.network_state[k], v) for k, v in new.network_state.items())
    assert read_meta(out / "checkpoints" / "best.ckpt").mean != read_meta(source).mean

    from fishbear.export import main as export_main

    export_main([f"ckpt={out / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'export'}", "pictures=40"])
    from fishbear.engine.deploy.standalone import OnnxPredictor

    onnx = OnnxPredictor(tmp_path / "export")
    torch_answers = Predictor.from_checkpoint(out / "checkpoints" / "best.ckpt").predict_batch([cast(p) for p in pictures])
    onnx_answers = [onnx.predict(cast(p)) for p in pictures]
    assert [a["label"] for a in onnx_answers] == [a["label"] for a in torch_answers]


def test_what_cannot_adapt_is_one_line(shifted, tmp_path, capsys):
    tmp, _, _, _ = shifted
    source = tmp / "run" / "checkpoints" / "best.ckpt"
    line = one_error(adapt_main, [f"ckpt={source}", "method=bn", f"out={tmp_path / 'a'}"], capsys)
    assert "give the new footage as frames=DIR" in line
    line = one_error(adapt_main, [f"ckpt={source}", f"frames={tmp / 'new_day'}", "method=magic", f"out={tmp_path / 'a'}"],
                     capsys)
    assert "method=magic: choose among colour, bn, tent" in line
    line = one_error(adapt_main, [f"ckpt={source}", f"frames={tmp / 'new_day'}", f"out={tmp / 'run' / 'adapted'}"], capsys)
    assert "is inside the source run" in line and not (tmp / "run" / "adapted").exists()
    line = one_error(adapt_main, [f"ckpt={source}", f"frames={tmp_path / 'none'}", f"out={tmp_path / 'a'}"], capsys)
    assert "is not a folder" in line


@pytest.mark.parametrize(("data", "methods", "refused"), [
    ("shapes_tags", "[colour,bn,tent,pseudo]", None),
    ("shapes_masks model=unet", "[colour,bn,tent,pseudo]", None),
    ("shapes_points", "[colour,bn]", "tent"),
    ("shapes_counts", "[colour,bn]", "pseudo"),
])
def test_every_kind_with_batch_norm_adapts_and_a_method_that_does_not_apply_is_one_line(data, methods, refused, tmp_path,
                                                                                          capsys):
    from tests.conftest import TINY

    run = tmp_path / "run"
    data, *model = data.split()
    train(compose_train([f"data={data}", *model, *TINY, "logger=none"], run))
    footage = tmp_path / "footage"
    from fishbear.engine.experiment import build_datamodule

    datamodule = build_datamodule(compose_train([f"data={data}", *TINY]))
    datamodule.prepare_data()
    datamodule.setup("test")
    from PIL import Image

    from fishbear.data.images import load_rgb

    footage.mkdir()
    for i, sample in enumerate(datamodule.samples("test")):
        Image.fromarray(cast(load_rgb(sample.image))).save(footage / f"{i}.png")
    ckpt = run / "checkpoints" / "best.ckpt"
    adapt_main([f"ckpt={ckpt}", f"frames={footage}", f"method={methods}", f"out={tmp_path / 'adapted'}"])
    capsys.readouterr()
    Predictor.from_checkpoint(tmp_path / "adapted" / "checkpoints" / "best.ckpt").predict_batch([cast(load_rgb(
        datamodule.samples("test")[0].image))])
    if refused:
        line = one_error(adapt_main, [f"ckpt={ckpt}", f"frames={footage}", f"method={refused}", f"out={tmp_path / 'b'}"],
                         capsys)
        assert "predicts no probabilities; use method=[colour,bn]" in line and not (tmp_path / "b").exists()


def test_pseudo_puts_the_doubtful_pictures_to_a_person_and_learns_from_what_the_person_sorted(shifted, tmp_path,
                                                                                                capsys):
    """``pseudo`` writes the ``review_share`` of the footage it is least sure of, losslessly, into
    ``doubtful/<its answer>/``; the person moves the misfiled ones; ``labelled=`` then counts those
    pictures as labelled (and no longer doubtful), and the folder is refused where it does not fit."""
    import csv
    import shutil

    from fishbear.data.images import load_rgb

    tmp, _, pictures, labels = shifted
    source = tmp / "run" / "checkpoints" / "best.ckpt"
    first = tmp_path / "first"
    adapt_main([f"ckpt={source}", f"frames={tmp / 'new_day'}", "method=[colour,pseudo]", "review_share=0.05",
                f"out={first}"])
    rows = list(csv.DictReader((first / "doubtful.csv").open()))
    assert len(rows) == int(0.05 * len(labels)) == len(list((first / "doubtful").rglob("*.png")))
    doubts = [float(r["doubt"]) for r in rows]
    assert doubts == sorted(doubts, reverse=True) and all(0 <= d <= 0.5 for d in doubts)
    person = tmp_path / "sorted_by_a_person"
    wrong = 0
    for row in rows:
        picture = first / row["file"]
        index = int(picture.stem.rsplit("_", 1)[1])
        assert picture.parent.name == row["predicted"]
        assert np.array_equal(load_rgb(picture), load_rgb(tmp / "new_day" / "cam1" / f"frame_{index:03d}.png"))
        wrong += row["predicted"] != labels[index]
        (person / labels[index]).mkdir(parents=True, exist_ok=True)
        shutil.copy(picture, person / labels[index] / picture.name)
    second = tmp_path / "second"
    report = adapt_main([f"ckpt={source}", f"frames={tmp / 'new_day'}", "method=[colour,pseudo]", "review_share=0.05",
                         f"labelled={person}", f"out={second}"])
    assert report["notes"]["pseudo"]["labelled_by_a_person"] == len(rows)
    assert report["notes"]["pseudo"]["footage"] == len(labels) - len(rows)  # the person's pictures are not guessed at
    again = {r["file"].rsplit("/", 1)[1] for r in csv.DictReader((second / "doubtful.csv").open())}
    assert not again & {r["file"].rsplit("/", 1)[1] for r in rows}
    answers = Predictor.from_checkpoint(second / "checkpoints" / "best.ckpt").predict_batch(
        [load_rgb(p) for r in rows for p in [first / r["file"]]])
    right = sum(a["label"] == labels[int(r["file"].rsplit("_", 1)[1].split(".")[0])] for a, r in zip(answers, rows))
    assert right >= len(rows) - wrong  # what the person said is learnt, not lost

    (person / "penguin").mkdir()
    line = one_error(adapt_main, [f"ckpt={source}", f"frames={tmp / 'new_day'}", "method=[colour,pseudo]",
                                  f"labelled={person}", f"out={tmp_path / 'third'}"], capsys)
    assert "folder(s) penguin are not classes of the model" in line
    line = one_error(adapt_main, [f"ckpt={source}", f"frames={tmp / 'new_day'}", "method=[colour,pseudo]",
                                  f"labelled={first / 'doubtful'}", f"out={first}", "overwrite=true"], capsys)
    assert "is inside out=" in line


def test_frames_adapt_true_adapts_on_the_video_it_sorts_and_serve_answers_as_predict(shifted, tmp_path):
    """``frames ... sort_with=CKPT adapt=true``: the checkpoint adapted to this very video (OUT/adapted),
    the frames sorted by it; the adapted checkpoint served answers as predict does."""
    import csv

    from fishbear.data.video import read_frames, write_video
    from fishbear.engine.checkpoint import read_meta
    from fishbear.frames import main as frames_main

    tmp, _, pictures, labels = shifted
    source = tmp / "run" / "checkpoints" / "best.ckpt"
    video = write_video(tmp_path / "later.mp4", [np.kron(cast(p), np.ones((2, 2, 1), np.uint8)) for p in pictures[::8]],
                        fps=2)
    table = frames_main([f"video={video}", f"out={tmp_path / 'sorted'}", f"sort_with={source}", "adapt=true"])
    adapted = tmp_path / "sorted" / "adapted" / "checkpoints" / "best.ckpt"
    assert read_meta(adapted).provenance.adapted["footage"]["video"] == str(video)
    rows = list(csv.DictReader(table.open()))
    decoded = [frame.image for frame in read_frames(video)]
    assert [r["class"] for r in rows] == [a["label"] for a in Predictor.from_checkpoint(adapted).predict_batch(decoded)]
    before = [a["label"] for a in Predictor.from_checkpoint(source).predict_batch(decoded)]
    truth = labels[::8]
    assert sum(r["class"] == t for r, t in zip(rows, truth)) > sum(b == t for b, t in zip(before, truth))

    from fishbear.engine.deploy.serve_client import ServedModel

    files = sorted((tmp / "new_day").rglob("*.png"))[:6]
    expected = {str(p): a["label"] for p, a in Predictor.from_checkpoint(adapted).predict_files(files)}
    server = ServedModel(adapted)
    try:
        answers = [server.post_file(p) for p in files]
    finally:
        server.stop()
    assert [answer["label"] for _, answer in answers] == [expected[str(p)] for p in files]


def test_a_long_video_is_read_a_frame_in_so_many_not_held_whole(tmp_path):
    from fishbear.data.video import write_video
    from fishbear.engine.adapt.footage import Footage

    rng = np.random.default_rng(0)
    video = write_video(tmp_path / "long.mp4", [blob_picture(rng, "left") for _ in range(60)], fps=10)
    footage = Footage.from_video(video, every=1, limit=12)
    assert len(footage) == 12 and footage.source["every"] == 5 and footage.source["of"] == 60
