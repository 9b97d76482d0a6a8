"""One test module per task kind (``fishbear/kinds/<kind>``), and what they share."""

import csv

# in-process runs without workers, sanity steps, logger, progress bar or augmentation
QUIET = ["data.num_workers=0", "trainer.num_sanity_val_steps=0", "logger=none", "trainer.enable_progress_bar=false",
         "data.augment=null"]


def read_rows(path):
    """A CSV's rows as dicts (predictions, frames)."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def assert_intervals(report, kind):
    """Every test metric has a 95% interval that holds its value (the kind's metric function
    reproduces the logged metric), computed from that kind's per-image results."""
    import numpy as np

    from fishbear.kinds import get_kind

    intervals = report["intervals"]
    assert set(intervals) == set(report["metrics"]), (intervals.keys(), report["metrics"].keys())
    for name, value in report["metrics"].items():
        low, high = intervals[name]["low"], intervals[name]["high"]
        assert low <= high and intervals[name]["level"] == 0.95
        if np.isfinite(value):
            assert low - 1e-4 <= value <= high + 1e-4, (name, value, intervals[name])
    assert get_kind(kind).name == report["kind"]
