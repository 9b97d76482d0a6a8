"""Inference from a checkpoint alone: Python API and command line."""

import csv
import re

import pytest
import torch
from PIL import Image

from fishbear.core.errors import CheckpointError
from fishbear.engine.inference import Predictor


def test_predictor_reproduces_the_reported_test_accuracy(trained_run):
    run_dir, report = trained_run
    predictor = Predictor.from_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    assert predictor.classes == report["classes"] and predictor.kind.name == "classify"
    root = report["data"]["root"]
    files = sorted((p, p.parent.name) for p in __import__("pathlib").Path(root, "test").rglob("*.jpg"))
    results = dict(predictor.predict_files([p for p, _ in files], batch_size=5))
    correct = sum(results[p]["label"] == label for p, label in files)
    assert correct / len(files) == pytest.approx(report["metrics"]["test/acc"])
    one = predictor.predict(Image.open(files[0][0]))
    assert set(one["probabilities"]) == set(report["classes"])
    assert sum(one["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert one == predictor.predict(files[0][0])


def test_checkpoint_errors_are_clear(trained_run, tmp_path):
    run_dir, _ = trained_run
    with pytest.raises(CheckpointError, match=r"nope\.ckpt does not exist\. Checkpoints in .*: best\.ckpt, last\.ckpt"):
        Predictor.from_checkpoint(run_dir / "checkpoints" / "nope.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a fishbear checkpoint"):
        Predictor.from_checkpoint(tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="is a 'classify' checkpoint, but a 'segment' one is needed"):
        Predictor.from_checkpoint(run_dir / "checkpoints" / "best.ckpt", kind="segment")
    with pytest.raises(CheckpointError, match=r"is a folder, not a checkpoint file; it holds checkpoints/best.ckpt, "
                                              r"checkpoints/last.ckpt\. Give the file"):
        Predictor.from_checkpoint(run_dir)


def test_predict_command_writes_a_csv_per_folder(trained_run, tmp_path):
    run_dir, report = trained_run
    folder = tmp_path / "images"
    folder.mkdir()
    for i, path in enumerate(sorted(__import__("pathlib").Path(report["data"]["root"], "valid").rglob("*.jpg"))[:3]):
        Image.open(path).save(folder / f"{i}.png")
    from fishbear.predict import main  # what `python -m fishbear.predict` runs, without a second interpreter

    assert main([f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", f"input={folder}"]) == folder / "predictions.csv"
    rows = list(csv.DictReader((folder / "predictions.csv").open()))
    assert len(rows) == 3 and rows[0]["label"] in report["classes"]
    assert {f"p_{c}" for c in report["classes"]} <= set(rows[0])

def test_predict_with_a_missing_checkpoint_says_so_and_exits_2(tmp_path, capsys):
    from fishbear.predict import main

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(SystemExit) as exit_info:  # the same wrapper as `python -m fishbear.predict`
        main([f"ckpt={tmp_path / 'missing.ckpt'}", f"input={tmp_path / 'a.png'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "missing.ckpt does not exist" in err and "Traceback" not in err


@pytest.mark.parametrize("module, args, message", [
    ("predict", ["ckpt=a.ckpt", "input=x", "nope=1"],
     r"nope is not a setting of this command \(the config has: ckpt, input, .*usage: fishbear predict"),
    ("predict", ["ckpt=a.ckpt", "input=x", "ouput=y.csv"], r"ouput is not a setting of this command; did you mean output\?"),
    ("predict", ["input=x"], r"ckpt must be set: add ckpt=\.\.\."),
    ("predict", ["ckpt=a.ckpt", "input=x", "batch_size=0"], r"batch_size=0 must be a whole number of 1 or more"),
    ("predict", ["ckpt=a.ckpt", "input=x", "score=2"], r"score=2 must be a number between 0 and 1"),
    ("frames", ["video=v.mp4", "out=o", "--out"], r"usage: fishbear frames video=VIDEO out=DIR"),
    ("frames", ["video=v.mp4", "out=o", "every=0"], r"every=0 must be a whole number of 1 or more"),
])
def test_predict_and_frames_take_hydra_overrides_and_refuse_bad_ones(module, args, message, capsys):
    import importlib

    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"fishbear.{module}").main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert re.search(message, err), err


def test_predict_skips_unreadable_files_and_predicts_the_rest(trained_run, tmp_path, capsys):
    from fishbear.predict import main

    run_dir, report = trained_run
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(folder / "good.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    output = main([f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", f"input={folder}"])
    rows = list(csv.DictReader(output.open()))
    assert [row["file"] for row in rows] == [str(folder / "good.png")]
    warning = capsys.readouterr().err
    assert "skipped 1 file(s) that are no readable image" in warning and "broken.jpg" in warning
    with pytest.raises(SystemExit) as exit_info:
        main([f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", f"input={folder}", "on_bad_image=error"])
    assert exit_info.value.code == 2 and "broken.jpg cannot be read as an image" in capsys.readouterr().err
