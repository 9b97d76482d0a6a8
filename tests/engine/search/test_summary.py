from __future__ import annotations

import json

from fishbear.engine.search.summary import collect_runs, write_summary


def _run(sweep, name, lr, acc, report=True, seed=None, half_width=0.05, val_loss=None):
    """A run folder as a sweep leaves it: overrides, and a report whose best validation loss is
    ``val_loss`` (default: one minus the test accuracy, so both agree) beside its test figures."""
    run = sweep / name
    (run / ".hydra").mkdir(parents=True)
    extra = f"- seed={seed}\n" if seed is not None else ""
    (run / ".hydra" / "overrides.yaml").write_text(f"- trainer.lr={lr}\n- model=mlp\n{extra}")
    if report:
        intervals = {"test/acc": {"low": acc - half_width, "high": acc + half_width, "method": "bootstrap"}}
        (run / "report.json").write_text(json.dumps(
            {"metrics": {"test/acc": acc, "test/loss": 1 - acc}, "intervals": intervals,
             "monitor": {"metric": "test/loss", "mode": "min"},
             "validation": {"metric": "val/loss", "mode": "min", "best": 1 - acc if val_loss is None else val_loss}}))


def test_summary_best_first_by_validation_with_varying_keys_first(tmp_path):
    _run(tmp_path, "0", 1e-4, 0.5)
    _run(tmp_path, "1", 1e-3, 0.9)
    _run(tmp_path, "2", 1e-2, 0.7)
    _run(tmp_path, "3", 1e-1, None, report=False)
    rows = collect_runs(tmp_path)
    assert [r["run"] for r in rows] == ["1", "2", "0", "3"] and rows[-1]["failed"]
    write_summary(tmp_path)
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert lines[0] == ("rank,run,runs,trainer.lr,model,vs_best,test/acc,test/acc std,test/acc low,test/acc high,"
                        "test/loss,test/loss std,test/loss low,test/loss high,val/loss,val/loss std,val/loss low,"
                        "val/loss high")
    assert lines[1].startswith("1,1,1,0.001,mlp,best,0.9000,,0.8500,0.9500,0.1000,,,,0.1000")
    # a single run has no interval of its validation figure: which is better is not claimed
    assert lines[2].startswith("2,2,1,0.01,mlp,no interval,0.7000")
    assert lines[-1].split(",")[6] == "failed"
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("# Sweep summary (4 runs in 4 rows, best first by validation: val/loss")


def test_the_best_run_is_chosen_by_validation_never_by_test(tmp_path):
    """Run 0 has the better test figure, run 1 the better validation figure: run 1 is the best
    (choosing by test would make the winner's test figure optimistic)."""
    _run(tmp_path, "0", 1e-3, 0.95, val_loss=0.40)
    _run(tmp_path, "1", 1e-2, 0.80, val_loss=0.20)
    assert [r["run"] for r in collect_runs(tmp_path)] == ["1", "0"]
    write_summary(tmp_path)
    best = (tmp_path / "summary.csv").read_text().splitlines()[1].split(",")
    assert best[:6] == ["1", "1", "1", "0.01", "mlp", "best"] and best[6] == "0.8000"


def test_seeds_of_one_setting_are_one_row_with_mean_and_spread(tmp_path):
    for i, (seed, acc) in enumerate([(1, 0.80), (2, 0.84), (3, 0.82)]):
        _run(tmp_path, str(i), 1e-3, acc, seed=seed)
    for i, (seed, acc) in enumerate([(1, 0.83), (2, 0.79), (3, 0.81)], start=3):
        _run(tmp_path, str(i), 1e-2, acc, seed=seed)
    write_summary(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "6 runs in 2 rows" in md
    rows = [line for line in md.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2
    # mean 0.82, std 0.02, t(2) 95% half-width 4.303 * 0.02 / sqrt(3) = 0.0497
    assert "| 0,1,2 | 3 | 0.001 | mlp | 1,2,3 | best | 0.8200 ± 0.0200 [0.7703, 0.8697]" in rows[0]
    # validation losses 0.18 and 0.19 with overlapping t intervals: the rows cannot be told apart
    assert rows[1].startswith("| 2 | 3,4,5 | 3 | 0.01 | mlp | 1,2,3 | not distinguishable | 0.8100 ± 0.0200")
