"""Point regression: finds the star well inside the always-the-mean-point distance, predicts pixels."""

from __future__ import annotations

import numpy as np
import pytest

from fishbear.train import train

from ..conftest import compose_train
from . import QUIET, assert_intervals, read_rows


@pytest.mark.slow  # a learning benchmark (every kind keeps a fast smoke test: its docs command, tests/commands/test_cli.py)
def test_point_regression_finds_the_star_and_predicts_pixels(tmp_path):
    from fishbear.engine.experiment import build_datamodule
    from fishbear.predict import main as predict

    overrides = ["data=shapes_points", "data.source.distractors=0", "data.source.train=75", "data.source.valid=10",
                 "data.source.test=15", "data.source.image_size=32", "data.image_size=32", "data.batch_size=16",
                 "model=point_regressor", "model.arch=convnet", "trainer.max_epochs=8", "callbacks.batch_grid.val_images=0",
                 *QUIET]
    cfg = compose_train(overrides, tmp_path / "run")
    data = build_datamodule(cfg)
    data.prepare_data()
    data.setup()
    train_points = np.array([s.target[0] for s in data.samples("train")])
    test_points = np.array([s.target[0] for s in data.samples("test")])
    baseline = np.linalg.norm(test_points - train_points.mean(0), axis=1).mean()  # always the mean point
    report = train(cfg)
    assert_intervals(report, "points")
    assert report["metrics"]["test/dist_px"] < 0.6 * baseline, (report["metrics"], baseline)
    assert report["points"]["mean_px"] == pytest.approx(report["metrics"]["test/dist_px"], rel=1e-4)
    assert (tmp_path / "run" / "point_samples.png").is_file()

    sample = data.samples("test")[0]
    out = tmp_path / "points.csv"
    predict([f"ckpt={tmp_path / 'run' / 'checkpoints' / 'best.ckpt'}", f"input={sample.image}", f"output={out}"])
    (row,) = read_rows(out)
    predicted = np.array([float(row["star_x"]), float(row["star_y"])])
    assert np.linalg.norm(predicted - sample.target[0]) < 3 * baseline  # in this image's own pixels
