"""Multi-label: learns tags above the constant guess, tunes thresholds per tag, predicts the tags above them."""

from __future__ import annotations

import numpy as np
import pytest

from fishbear.train import train

from ..conftest import compose_train
from ..fixtures import write_planet
from . import QUIET, assert_intervals, read_rows


def test_multilabel_learns_tags_tunes_thresholds_and_predicts_them(tmp_path):
    from fishbear.engine.checkpoint import load_checkpoint
    from fishbear.predict import main as predict

    root = write_planet(tmp_path / "planet", n=160)
    run = tmp_path / "run"
    report = train(compose_train(["data=planet", f"data.root={root}", "data.image_size=32", "data.batch_size=16",
                                  "trainer.max_epochs=6", *QUIET], run))
    truth = np.array([[t in row["tags"].split() for t in ("blue", "green", "red")] for row in read_rows(root / "train_v2.csv")])
    constant = max(truth.mean(), 1 - truth.mean())  # all tags on, or all off
    metrics = report["metrics"]
    assert_intervals(report, "multilabel")
    assert metrics["test/acc"] > constant + 0.1, (metrics, constant)
    assert {"test/fbeta", "test/fbeta_tuned"} <= set(metrics)
    section = report["multilabel"]
    assert set(section["thresholds"]) == {"global", "tuned"}
    assert section["global"]["fbeta"] == pytest.approx(metrics["test/fbeta"], abs=1e-5)
    assert section["tuned"]["fbeta"] == pytest.approx(metrics["test/fbeta_tuned"], abs=1e-5)
    meta = load_checkpoint(run / "checkpoints" / "best.ckpt", kind="multilabel").meta
    assert meta.settings.thresholds == pytest.approx(section["thresholds"]["tuned"])
    assert "F2 (sample-averaged) at the global and the tuned thresholds" in (run / "report.md").read_text()
    assert (run / "tag_samples.png").is_file() and (run / "val_samples.png").is_file()

    out = tmp_path / "tags.csv"
    predict([f"ckpt={run / 'checkpoints' / 'best.ckpt'}", f"input={root / 'train-jpg'}", f"output={out}"])
    rows = read_rows(out)
    assert len(rows) == 160 and set(rows[0]) == {"file", "tags", "p_blue", "p_green", "p_red"}
    for row in rows:  # the tags are exactly those above their tuned thresholds
        above = [t for t, cut in zip(("blue", "green", "red"), meta.settings.thresholds) if float(row[f"p_{t}"]) > cut]
        assert row["tags"].split() == above
