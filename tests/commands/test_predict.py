"""A user's file is never replaced by a generated one: every command that writes next to the
user's data (predict, frames, convert) refuses a file it did not write, re-runs into its own
output, and says which it was. Each case runs the command's ``main`` (what ``python -m`` runs)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fishbear.core.errors import CheckpointError
from fishbear.engine.inference import Predictor
from fishbear.predict import main as predict_main
from tests.conftest import file_digests, one_error, write_video


def _ramp_video(path: Path, n: int = 10, fps: int = 4) -> Path:
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(n)]
    return write_video(path, frames, fps)


# -- predict ---------------------------------------------------------------------------------------
def test_predict_never_replaces_a_corrected_label_file_the_pre_labelling_loop(trained_detector, tmp_path, capsys):
    """predict writes VOC files, the user corrects one in LabelImg, predict runs again: refused,
    the correction kept byte for byte; run again after no correction, it replaces its own files."""
    import shutil

    from fishbear.predict import main

    ckpt, images = trained_detector
    folder = tmp_path / "frames"
    shutil.copytree(images, folder)
    args = [f"ckpt={ckpt}", f"input={folder}", "score=0.0"]
    main(args)
    boxes = folder / "predicted_boxes"
    first = sorted(boxes.glob("*.xml"))
    assert len(first) == 3
    main(args)  # its own output: replaced, and said so
    assert "file(s) of an earlier fishbear run replaced" in capsys.readouterr().out
    corrected = first[0].read_text().replace("<name>", "<name>corrected_")
    first[0].write_text(corrected)
    before = file_digests(folder)
    line = one_error(main, args, capsys)
    assert f"{first[0].name} exists and was not written by fishbear" in line and "overwrite=true" in line
    assert file_digests(folder) == before and first[0].read_text() == corrected
    main([*args, f"boxes={tmp_path / 'round2'}", f"output={tmp_path / 'round2.csv'}"])  # the way out it names
    assert first[0].read_text() == corrected and len(list((tmp_path / "round2").glob("*.xml"))) == 3
    main([*args, "overwrite=true"])  # the user's explicit choice
    assert first[0].read_text() != corrected


def test_predict_refuses_the_users_csv_a_photo_and_a_folder_as_output(trained_run, tmp_path, capsys):
    from fishbear.predict import main

    run_dir, _ = trained_run
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(folder / f"{i}.jpg")
    (folder / "predictions.csv").write_text("file,label\nmine.jpg,cat\n")
    before = file_digests(folder)
    assert "predictions.csv exists and was not written by fishbear" in one_error(main, [f"ckpt={ckpt}", f"input={folder}"],
                                                                              capsys)
    assert "the predictions are CSV; give a path ending in .csv" in one_error(
        main, [f"ckpt={ckpt}", f"input={folder}", f"output={folder / '0.jpg'}"], capsys)
    assert "is a folder; give the CSV file to write" in one_error(
        main, [f"ckpt={ckpt}", f"input={folder}", f"output={tmp_path}"], capsys)
    assert file_digests(folder) == before


def test_images_of_one_name_in_two_folders_get_two_label_files(trained_detector, tmp_path, capsys):
    from fishbear.predict import main

    ckpt, images = trained_detector
    pictures = sorted(images.glob("*.jpg"))
    for camera, picture in zip(("cam1", "cam2"), pictures):
        (tmp_path / "in" / camera).mkdir(parents=True)
        Image.open(picture).save(tmp_path / "in" / camera / "img.jpg")
    main([f"ckpt={ckpt}", f"input={tmp_path / 'in'}", "score=0.0"])
    written = sorted(p.relative_to(tmp_path / "in" / "predicted_boxes").as_posix()
                     for p in (tmp_path / "in" / "predicted_boxes").rglob("*.xml"))
    assert written == ["cam1/img.xml", "cam2/img.xml"]
    rows = list(csv.DictReader((tmp_path / "in" / "predictions.csv").open()))
    assert {Path(r["voc_xml"]).parent.name for r in rows} == {"cam1", "cam2"}
    # one folder, one stem, two images: refused before anything is written
    Image.open(pictures[0]).save(tmp_path / "in" / "cam1" / "img.png")
    before = file_digests(tmp_path / "in")
    line = one_error(main, [f"ckpt={ckpt}", f"input={tmp_path / 'in'}", "score=0.0"], capsys)
    assert "img.jpg and" in line and "img.png would both be written as label files" in line
    assert file_digests(tmp_path / "in") == before


def test_a_decompression_bomb_is_skipped_and_the_other_images_predicted(trained_run, tmp_path, capsys):
    from fishbear.predict import main
    from tests.fixtures import decompression_bomb

    run_dir, report = trained_run
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "good.jpg")
    decompression_bomb(folder / "huge.png")
    output = main([f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", f"input={folder}"])
    rows = list(csv.DictReader(output.open()))
    assert [Path(r["file"]).name for r in rows] == ["good.jpg"] and rows[0]["label"] in report["classes"]
    assert "huge.png (too many pixels to decode safely" in capsys.readouterr().err


def test_a_picture_predict_cannot_fit_is_skipped_or_named(trained_run, tmp_path, capsys):
    """A 1 x 2,000,000 strip decodes, but the model's crop would first scale it to 224 x 4.5e8:
    skipped with its name (the others predicted), or, with on_bad_image=error, one line naming it."""
    from PIL import Image

    from fishbear.predict import main as predict

    run_dir, report = trained_run
    folder = tmp_path / "in"
    folder.mkdir()
    for i, source in enumerate(sorted((Path(report["data"]["root"]) / "test").rglob("*.jpg"))[:2]):
        (folder / f"{i}.jfif").write_bytes(source.read_bytes())  # JPEGs under a browser's name are images too
    Image.new("L", (2_000_000, 1), 80).save(folder / "strip.png")
    output = predict([f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", f"input={folder}"])
    assert "strip.png" in capsys.readouterr().err
    with output.open() as handle:
        assert sorted(Path(r["file"]).name for r in csv.DictReader(handle)) == ["0.jfif", "1.jfif"]
    with pytest.raises(SystemExit) as stopped:
        predict([f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", f"input={folder}", "on_bad_image=error",
                 f"output={tmp_path / 'e.csv'}"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "strip.png cannot be fitted to the model" in err and "proportions" in err


def test_predict_on_a_video_writes_frame_rows(trained_run, tmp_path):
    run_dir, report = trained_run
    video = _ramp_video(tmp_path / "clip.mp4", n=6)
    output = predict_main([f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", f"input={video}", "every=2"])
    assert output == tmp_path / "clip.predictions.csv"
    rows = list(csv.DictReader(output.open()))
    assert [(r["frame"], r["time"]) for r in rows] == [("0", "0.000"), ("2", "0.500"), ("4", "1.000")]
    assert all(r["label"] in report["classes"] for r in rows)


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
