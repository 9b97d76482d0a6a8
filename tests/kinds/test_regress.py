"""Image regression (the sixth kind): values from a CSV or counted from boxes, learning counts
above the predict-the-mean baseline, the report and predict's columns, the Poisson loss."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample
from fishbear.engine.experiment import build_datamodule
from fishbear.formats.values_csv import ValuesCsvReader
from fishbear.formats.voc import VocReader, voc_xml
from fishbear.kinds import get_kind
from fishbear.kinds.regress import values
from fishbear.kinds.regress.relabel import BoxCounts
from fishbear.train import train

from ..conftest import compose_train, requires_shared
from . import assert_intervals

QUIET = ["data.num_workers=0", "trainer.num_sanity_val_steps=0", "logger=none", "trainer.enable_progress_bar=false"]


def _images(folder, names, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", size, (90, 120, 150)).save(folder / name)


def test_values_csv_reader_reads_named_values_and_names_bad_rows(tmp_path):
    _images(tmp_path / "images", ["a.jpg", "b.jpg"])
    (tmp_path / "values.csv").write_text("image,age,length\na.jpg,3,12.5\nb,7,30\n")
    catalog = ValuesCsvReader()(tmp_path)
    assert catalog.kind == "regress" and catalog.classes == ["age", "length"]
    assert [s.target.tolist() for s in catalog.splits["train"]] == [[3.0, 12.5], [7.0, 30.0]]
    (tmp_path / "values.csv").write_text("image,age\na.jpg,3\nb.jpg,old\n")
    with pytest.raises(DataError, match=r"values.csv, line 3: every value must be a number"):
        ValuesCsvReader()(tmp_path)
    (tmp_path / "values.csv").write_text("image,age\nc.jpg,3\n")
    with pytest.raises(DataError, match=r"names 1 image\(s\) not found"):
        ValuesCsvReader()(tmp_path)
    (tmp_path / "values.csv").write_text("image\na.jpg\n")
    with pytest.raises(DataError, match="no value column"):
        ValuesCsvReader()(tmp_path)


def test_boxes_are_counted_per_image_and_per_class(tmp_path):
    _images(tmp_path / "JPEGImages", ["one.jpg", "three.jpg", "empty.jpg"], size=(64, 48))
    (tmp_path / "Annotations").mkdir()
    labels = {"one": [("fish", (1, 1, 10, 10))],
              "three": [("fish", (1, 1, 10, 10)), ("fish", (20, 5, 30, 15)), ("crab", (40, 20, 60, 40))],
              "empty": []}
    for stem, objects in labels.items():
        (tmp_path / "Annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", 64, 48, objects))
    boxes = VocReader()(tmp_path)
    total = BoxCounts()(boxes)
    assert total.kind == "regress" and total.classes == ["count"]
    assert {s.image.stem: s.target.tolist() for s in total.splits["train"]} == {"one": [1], "three": [3], "empty": [0]}
    per_class = BoxCounts(per_class=True)(boxes)
    assert per_class.classes == ["crab_count", "fish_count"]
    assert {s.image.stem: s.target.tolist() for s in per_class.splits["train"]}["three"] == [1, 2]
    with pytest.raises(DataError, match="BoxCounts counts boxes"):
        BoxCounts()(Catalog(splits={"train": [Sample(tmp_path, 0)]}, classes=["a"], kind="classify"))


def test_a_reader_of_another_kind_is_refused_by_name(tmp_path):
    _images(tmp_path / "images", ["a.jpg"])
    (tmp_path / "values.csv").write_text("image,count\na.jpg,1\n")
    from fishbear.engine.data_config import image_data

    data = image_data(root=tmp_path, reader=ValuesCsvReader(), kind="classify", num_workers=0)
    with pytest.raises(DataError, match=r"reads 'regress' labels .* the data config's task is 'classify'"):
        data.setup()


def test_values_are_standardised_for_the_network_and_read_back_in_their_units():
    from fishbear.kinds.regress import RegressSettings

    from ..conftest import model_meta

    settings = RegressSettings(value_mean=(2.0,), value_std=(0.5,))
    assert values(torch.tensor([[0.0], [2.0]]), settings).tolist() == [[2.0], [3.0]]
    assert values(torch.tensor([[0.0]]), RegressSettings(regress_loss="poisson")).tolist() == [[1.0]]
    (row,) = get_kind("regress").interpret(torch.tensor([[1.0, -1.0]]), [(10, 10)],
                                           model_meta("regress", ["a", "b"], value_mean=(1.0, 5.0), value_std=(1.0, 2.0)))
    assert row["values"] == {"a": 2.0, "b": 3.0} and row["columns"] == {"a": "2.0000", "b": "3.0000"}


@pytest.mark.slow  # a learning benchmark (every kind keeps a fast smoke test: its docs command, tests/commands/test_cli.py)
def test_shapes_counts_beat_predicting_the_mean_and_predict_writes_the_count(tmp_path):
    from fishbear.predict import main as predict

    # 520 images of 48 px (about 330 to train on), 16 epochs: about 10 s on 2 CPU cores
    overrides = ["data=shapes_counts", "data.source.train=100", "data.source.valid=15", "data.source.test=15",
                 "data.source.image_size=48", "data.image_size=48", "data.batch_size=16", "trainer.max_epochs=16",
                 "callbacks.batch_grid.val_images=0", *QUIET]
    cfg = compose_train(overrides, tmp_path / "run")
    data = build_datamodule(cfg)
    data.prepare_data()
    data.setup()
    train_counts = np.array([s.target[0] for s in data.samples("train")])
    test_counts = np.array([s.target[0] for s in data.samples("test")])
    baseline = np.abs(test_counts - train_counts.mean()).mean()  # always the training mean
    report = train(cfg)
    assert_intervals(report, "regress")
    section = report["regress"]
    assert section["baseline_mae"] == pytest.approx(baseline, rel=1e-5)
    assert report["metrics"]["test/mae"] == pytest.approx(section["mae"], rel=1e-4)
    # measured with seeds 42, 1, 2: MAE 0.488, 0.458, 0.481 against 1.321 for the training mean
    # (ratios 0.35-0.37; rounded counts exactly right for 61-63% of the test images)
    assert section["mae"] < 0.6 * baseline, (section["mae"], baseline)
    assert section["per_value"][0]["value"] == "count" and 0 <= section["per_value"][0]["exact"] <= 1
    run = tmp_path / "run"
    assert (run / "regression_scatter.png").is_file() and (run / "regression_worst.png").is_file()
    assert "| value | MAE | baseline MAE |" in (run / "report.md").read_text()

    sample = data.samples("test")[0]
    out = tmp_path / "counts.csv"
    predict([f"ckpt={run / 'checkpoints' / 'best.ckpt'}", f"input={sample.image}", f"output={out}"])
    (row,) = list(csv.DictReader(out.open()))
    assert set(row) == {"file", "count"} and -1 < float(row["count"]) < 6


def test_poisson_loss_trains_on_counts(tmp_path):
    report = train(compose_train(["data=shapes_counts", "task.loss=poisson", "data.source.train=4", "data.source.valid=1",
                                  "data.source.test=2", "data.source.image_size=32", "data.image_size=32",
                                  "data.batch_size=8", "trainer.max_epochs=1", "callbacks.batch_grid.val_images=0",
                                  *QUIET], tmp_path))
    assert np.isfinite(report["metrics"]["test/loss"]) and report["metrics"]["test/mae"] >= 0
    # the network predicts log-rates: every predicted count is positive
    assert all(v > 0 for row in report["regress"]["worst"] for v in row["predicted"])
    from fishbear.engine.checkpoint import read_meta

    meta = read_meta(tmp_path / "checkpoints" / "best.ckpt")
    assert meta.settings.regress_loss == "poisson" and json.dumps(meta.to_section())


@pytest.mark.slow
def test_fish_counts_on_the_shared_frames_report_mae_against_the_mean(tmp_path):
    root = requires_shared("fish", "video1_output")
    report = train(compose_train(["data=fish_counts", f"data.root={root}", "data.image_size=[96,168]",
                                  "trainer.max_epochs=8", "callbacks.batch_grid.val_images=0", *QUIET], tmp_path))
    section = report["regress"]
    assert report["data"]["sizes"]["test"] > 20 and section["per_value"][0]["value"] == "count"
    assert section["baseline_mae"] > 0 and np.isfinite(section["mae"])
    print(f"fish_counts: MAE {section['mae']:.3f} against {section['baseline_mae']:.3f} for the training mean")
