"""python -m fishbear.evaluate: the run report for a checkpoint."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from fishbear.core.errors import CheckpointError
from fishbear.evaluate import evaluate
from tests.conftest import TINY, compose_train

DATA = [o for o in TINY if o.startswith("data.")]


def test_evaluate_reproduces_the_training_report(trained_run, tmp_path):
    run_dir, report = trained_run
    cfg = compose_train([f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", *DATA], tmp_path, config_name="evaluate")
    result = evaluate(cfg)
    assert result["metrics"]["test/acc"] == pytest.approx(report["metrics"]["test/acc"])
    assert result["metrics"]["test/loss"] == pytest.approx(report["metrics"]["test/loss"], rel=1e-4)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["checkpoint"].endswith("best.ckpt") and (tmp_path / "confusion_matrix.png").is_file()
    assert on_disk["classify"]["confusion_matrix"] == report["classify"]["confusion_matrix"]


def test_evaluate_refuses_data_with_other_classes(trained_run, tmp_path):
    run_dir, _ = trained_run
    for split in ("train", "test"):
        for cls in ("x", "y"):
            path = tmp_path / "data" / split / cls / "0.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8)).save(path)
            Image.new("RGB", (8, 8)).save(path.with_name("1.png"))
    cfg = compose_train([f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", "data=folder",
                         f"data.root={tmp_path / 'data'}"], tmp_path / "out", config_name="evaluate")
    with pytest.raises(CheckpointError, match=r"trained on classes \['circle', 'square', 'star', 'triangle'\]"):
        evaluate(cfg)


def test_evaluate_with_a_missing_checkpoint_names_it(tmp_path):
    # in process: the CLI's wrapper turns this error into one line and exit status 2 (tested with predict)
    cfg = compose_train([f"ckpt={tmp_path / 'gone.ckpt'}", *DATA], tmp_path / "out", config_name="evaluate")
    with pytest.raises(CheckpointError, match=r"gone\.ckpt does not exist"):
        evaluate(cfg)
