"""A user's file is never replaced by a generated one: every command that writes next to the
user's data (predict, frames, convert) refuses a file it did not write, re-runs into its own
output, and says which it was. Each case runs the command's ``main`` (what ``python -m`` runs)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fishbear.core.outputs import JOURNAL, OutputClash, OutputFiles


def _digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (fishbear's journal aside) and its sha256: to show them untouched."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != JOURNAL}


def _fails(main, args: list[str], capsys) -> str:
    """The command exits with status 2 and one ``error:`` line, no traceback; returns the line."""
    with pytest.raises(SystemExit) as stop:
        main(args)
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- the policy itself ---------------------------------------------------------------------------
def test_a_file_is_fishbears_only_while_its_bytes_are_what_fishbear_wrote(tmp_path):
    target = tmp_path / "out" / "a.txt"
    with OutputFiles() as files:
        files.write_text(target, "first\n")
    with OutputFiles() as files:  # a later command: its own earlier output is replaced, and counted
        files.write_text(target, "second\n")
        assert files.replaced == 1 and "1 file(s) of an earlier fishbear run replaced" in files.note()
    target.write_text("the user's correction\n")
    with OutputFiles() as files, pytest.raises(OutputClash, match=r"a\.txt exists and was not written by fishbear"):
        files.write_text(target, "third\n")
    assert target.read_text() == "the user's correction\n"
    with OutputFiles(overwrite=True) as files:
        files.write_text(target, "third\n")
    assert target.read_text() == "third\n"


def test_a_journal_line_cut_by_a_kill_keeps_the_entries_before_it(tmp_path):
    with OutputFiles() as files:
        files.write_text(tmp_path / "a.txt", "a\n")
    with (tmp_path / JOURNAL).open("a") as journal:
        journal.write('{"file": "b.txt", "sha2')  # the process died mid-line
    assert OutputFiles().is_ours(tmp_path / "a.txt")
    with OutputFiles() as files:
        files.write_text(tmp_path / "a.txt", "again\n")


def test_an_identical_file_is_no_clash_and_a_link_is_never_written_through(tmp_path):
    (tmp_path / "same.txt").write_text("x\n")
    with OutputFiles() as files:
        files.write_text(tmp_path / "same.txt", "x\n")  # the same bytes: nothing is lost either way
    (tmp_path / "elsewhere.txt").write_text("precious\n")
    (tmp_path / "link.txt").symlink_to(tmp_path / "elsewhere.txt")
    with OutputFiles() as files, pytest.raises(OutputClash, match="is a link fishbear did not make"):
        files.write_text(tmp_path / "link.txt", "y\n")
    assert (tmp_path / "elsewhere.txt").read_text() == "precious\n"


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
    before = _digest(folder)
    line = _fails(main, args, capsys)
    assert f"{first[0].name} exists and was not written by fishbear" in line and "overwrite=true" in line
    assert _digest(folder) == before and first[0].read_text() == corrected
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
    before = _digest(folder)
    assert "predictions.csv exists and was not written by fishbear" in _fails(main, [f"ckpt={ckpt}", f"input={folder}"],
                                                                              capsys)
    assert "the predictions are CSV; give a path ending in .csv" in _fails(
        main, [f"ckpt={ckpt}", f"input={folder}", f"output={folder / '0.jpg'}"], capsys)
    assert "is a folder; give the CSV file to write" in _fails(
        main, [f"ckpt={ckpt}", f"input={folder}", f"output={tmp_path}"], capsys)
    assert _digest(folder) == before


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
    before = _digest(tmp_path / "in")
    line = _fails(main, [f"ckpt={ckpt}", f"input={tmp_path / 'in'}", "score=0.0"], capsys)
    assert "img.jpg and" in line and "img.png would both be written as label files" in line
    assert _digest(tmp_path / "in") == before


def test_a_decompression_bomb_is_skipped_and_the_other_images_predicted(trained_run, tmp_path, capsys):
    from fishbear.predict import main

    from .test_datamodule_refusals import decompression_bomb

    run_dir, report = trained_run
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "good.jpg")
    decompression_bomb(folder / "huge.png")
    output = main([f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", f"input={folder}"])
    rows = list(csv.DictReader(output.open()))
    assert [Path(r["file"]).name for r in rows] == ["good.jpg"] and rows[0]["label"] in report["classes"]
    assert "huge.png (too many pixels to decode safely" in capsys.readouterr().err


# -- frames ----------------------------------------------------------------------------------------
def test_frames_never_writes_over_the_users_frames(tmp_path, capsys):
    from fishbear.data.shapes import render_scene
    from fishbear.frames import main

    from .conftest import write_video

    rng = np.random.default_rng(0)
    video = write_video(tmp_path / "clip.mp4", [render_scene(rng, 64, [k]).image for k in ("circle", "star")], 2)
    out = tmp_path / "out"
    out.mkdir()
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(out / "frame_000000.jpg")  # the user's own
    (out / "frames.csv").write_text("frame,note\n0,my notes\n")
    before = _digest(out)
    line = _fails(main, [f"video={video}", f"out={out}"], capsys)
    assert "exists and was not written by fishbear" in line and "another out=" in line
    assert _digest(out) == before
    fresh = tmp_path / "fresh"
    main([f"video={video}", f"out={fresh}"])
    main([f"video={video}", f"out={fresh}"])  # into its own earlier output
    assert "replaced" in capsys.readouterr().out
    (tmp_path / "a-file").write_text("x")
    assert "is a file; the output here is a folder" in _fails(main, [f"video={video}", f"out={tmp_path / 'a-file'}"],
                                                              capsys)


# -- convert ---------------------------------------------------------------------------------------
def _voc_dataset(root: Path, names: list[str]) -> Path:
    from fishbear.formats.voc import voc_xml

    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    for i, name in enumerate(names):
        Image.fromarray(np.full((40, 60, 3), 30 * i, np.uint8)).save(root / "JPEGImages" / name)
        stem = f"label{i}"
        (root / "Annotations" / f"{stem}.xml").write_text(voc_xml(name, 60, 40, [("fish", (5, 5, 30, 20))]))
    return root


def test_convert_reruns_into_its_own_output_and_refuses_the_users(tmp_path, capsys):
    from fishbear.convert import main

    source = _voc_dataset(tmp_path / "voc", ["a.jpg", "b.jpg"])
    dst = tmp_path / "coco"
    args = [f"src={source}", "src_format=voc", f"dst={dst}", "dst_format=coco"]
    main(args)
    main(args)  # its own output: written again
    assert "replaced" in capsys.readouterr().out
    instances = dst / "annotations" / "instances_train2017.json"
    instances.write_text(instances.read_text().replace('"fish"', '"cod"'))  # the user edits the labels
    before = _digest(dst)
    assert "instances_train2017.json exists and was not written by fishbear" in _fails(main, args, capsys)
    assert _digest(dst) == before
    (tmp_path / "a-file").write_text("x")
    assert "is a file; the output here is a folder" in _fails(
        main, [f"src={source}", "src_format=voc", f"dst={tmp_path / 'a-file'}", "dst_format=coco"], capsys)


def test_convert_refuses_two_images_that_would_share_a_label_file(tmp_path, capsys):
    from fishbear.convert import main

    source = _voc_dataset(tmp_path / "voc", ["X.jpg", "X.png"])
    line = _fails(main, [f"src={source}", "src_format=voc", f"dst={tmp_path / 'out'}", "dst_format=voc"], capsys)
    assert "X.jpg and" in line and "X.png would both be written as label files" in line
    assert not (tmp_path / "out").exists()


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
