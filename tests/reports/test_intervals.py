"""Intervals on test metrics: Wilson's closed form for accuracy, a seeded bootstrap over images
or whole groups for everything else, each kind's metrics recomputed from per-image results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fishbear.kinds import get_kind
from fishbear.reports.intervals import bootstrap, metric_intervals, resample_weights, wilson


def _classify_results(n=200, seed=0):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 3, n)
    right = rng.random(n) < 0.7
    predicted = np.where(right, targets, (targets + 1) % 3)
    probabilities = np.eye(3)[predicted] * 0.8 + 0.2 / 3
    return {"prediction": torch.tensor(probabilities), "target": torch.tensor(targets),
            "loss": torch.tensor(rng.random(n)), "index": torch.arange(n)}


def test_wilson_matches_the_textbook_values():
    low, high = wilson(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    low, high = wilson(115, 115)  # all right: the interval still admits errors
    assert high == pytest.approx(1.0) and low == pytest.approx(0.9677, abs=1e-3)


def test_classify_metrics_from_weights_equal_scikit_learn():
    from sklearn.metrics import f1_score

    results = _classify_results()
    scores = get_kind("classify").metric_function(results, ["a", "b", "c"])(np.ones(200))
    predicted = results["prediction"].numpy().argmax(1)
    assert scores["acc"] == pytest.approx((predicted == results["target"].numpy()).mean())
    assert scores["f1"] == pytest.approx(f1_score(results["target"].numpy(), predicted, average="macro"))
    assert scores["loss"] == pytest.approx(results["loss"].numpy().mean())


def test_bootstrap_is_seeded_and_covers_the_value():
    results = _classify_results()
    function = get_kind("classify").metric_function(results, ["a", "b", "c"])
    first = bootstrap(function, 200, seed=3, resamples=300)
    assert first == bootstrap(function, 200, seed=3, resamples=300)
    value = function(np.ones(200))
    for name in ("acc", "f1", "loss"):
        assert first[name]["low"] < value[name] < first[name]["high"]
    # about the binomial spread of 200 images at 0.7: +-6.4 points
    assert 0.09 < first["acc"]["high"] - first["acc"]["low"] < 0.16


def test_grouped_resampling_draws_whole_groups_and_widens_correlated_results():
    groups = [f"g{i // 20}" for i in range(200)]  # 10 groups of 20
    weights = resample_weights(200, groups, np.random.default_rng(0))
    for g in range(10):
        assert len(set(weights[g * 20:(g + 1) * 20])) == 1  # a group is drawn whole
    assert weights.sum() == 200
    # a group is all right or all wrong: 10 groups are far less evidence than 200 images
    correct = np.array([(i // 20) % 2 for i in range(200)], dtype=float)

    def accuracy(w):
        return {"acc": float(w @ correct / w.sum())}

    wide = bootstrap(accuracy, 200, groups, resamples=400)["acc"]
    narrow = bootstrap(accuracy, 200, None, resamples=400)["acc"]
    assert (wide["high"] - wide["low"]) > 2.5 * (narrow["high"] - narrow["low"])
    assert "10 groups" in wide["method"]


def test_test_intervals_use_wilson_only_for_independent_images():
    results = _classify_results()
    function = get_kind("classify").metric_function(results, ["a", "b", "c"])
    metrics = {"test/acc": 0.7, "test/f1": 0.69, "test/loss": 0.5}
    independent = metric_intervals(metrics, function, 200, None, 200, proportions={"acc": 140})
    assert independent["test/acc"]["method"].startswith("Wilson") and set(independent) == set(metrics)
    grouped = metric_intervals(metrics, function, 200, [i // 10 for i in range(200)], 200, proportions={"acc": 140})
    assert grouped["test/acc"]["method"].startswith("bootstrap over 20 groups")


def test_the_run_report_carries_an_interval_per_test_metric(trained_run):
    run_dir, report = trained_run
    assert set(report["intervals"]) == set(report["metrics"]) and report["intervals"]
    for name, value in report["metrics"].items():
        assert report["intervals"][name]["low"] - 1e-4 <= value <= report["intervals"][name]["high"] + 1e-4
    markdown = (run_dir / "report.md").read_text()
    assert "95% interval" in markdown and "## Leakage check" in markdown
