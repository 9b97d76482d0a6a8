import json

from fishbear.sweep import collect_runs, write_summary


def _run(sweep, name, lr, acc, report=True):
    run = sweep / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(f"- trainer.lr={lr}\n- model=mlp\n")
    if report:
        (run / "report.json").write_text(json.dumps(
            {"metrics": {"test/acc": acc, "test/loss": 1 - acc}, "monitor": {"metric": "test/acc", "mode": "max"}}))


def test_summary_best_first_with_varying_keys_first(tmp_path):
    _run(tmp_path, "0", 1e-4, 0.5)
    _run(tmp_path, "1", 1e-3, 0.9)
    _run(tmp_path, "2", 1e-2, 0.7)
    _run(tmp_path, "3", 1e-1, None, report=False)
    rows = collect_runs(tmp_path)
    assert [r["run"] for r in rows] == ["1", "2", "0", "3"] and rows[-1]["failed"]
    write_summary(tmp_path)
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert lines[0] == "rank,run,trainer.lr,model,test/acc,test/loss"
    assert lines[1] == "1,1,0.001,mlp,0.9000,0.1000"
    assert lines[-1].endswith("failed,failed")
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("# Sweep summary (4 runs, best first by test/acc)")
