"""Optuna searches (fishbear.engine.search.sweeper): the search space read from Hydra's override syntax, a study
that survives its process being killed, pruning recorded in the run folder and the tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from fishbear.core.errors import ConfigError
from fishbear.engine.search.sweeper import search_space
from tests.conftest import compose_train

SEARCH = ["python", "-m", "fishbear.train", "-m", "hparams_search=shapes_optuna", "hydra.sweeper.n_trials=3", "logger=none",
          "data.num_workers=0"]


def test_search_space_from_override_syntax():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space, fixed = search_space(
        {"trainer.lr": "tag(log, interval(1e-4, 1e-1))", "model.dropout": "interval(0.0, 0.5)",
         "data.augment.crop_scale": "choice([0.08, 1.0], [0.35, 1.0])", "trainer.max_epochs": "3"},
        ["callbacks.finetune.freeze_epochs=0,1,2", "data.batch_size=tag(int, interval(8, 64))", "model.dropout=0.1"])
    assert space["trainer.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert space["data.batch_size"] == IntDistribution(8, 64)
    assert space["callbacks.finetune.freeze_epochs"] == CategoricalDistribution([0, 1, 2])
    # lists travel as their override text, which Hydra reads back as lists
    assert space["data.augment.crop_scale"] == CategoricalDistribution(["[0.08,1.0]", "[0.35,1.0]"])
    assert "model.dropout" not in space  # fixed on the command line: the command line wins
    assert fixed == ["trainer.max_epochs=3", "model.dropout=0.1"]
    with pytest.raises(ConfigError, match="cannot search over"):
        search_space({"model": "glob(*)"}, [])


def test_search_configs_compose_and_choose_by_validation():
    for name in ("shapes_optuna", "bears_optuna"):
        cfg = compose_train([f"hparams_search={name}"])
        assert cfg.hydra.sweeper._target_ == "hydra_plugins.fishbear_optuna_sweeper.OptunaSweeper"
        assert cfg.optimized_metric == cfg.task.monitor and cfg.optimized_metric.startswith("val/")
        assert cfg.hydra.sweeper.direction == cfg.task.monitor_mode
    bears = compose_train(["hparams_search=bears_optuna"])
    assert set(bears.hydra.sweeper.params) == {"trainer.lr", "trainer.lr_div", "callbacks.finetune.freeze_epochs",
                                               "data.augment.crop_scale", "model.dropout"}


@pytest.mark.slow  # three tiny runs, a kill and three more processes' start-up: half a minute
def test_killed_search_continues_where_it_stopped(tmp_path):
    import optuna

    sweep = tmp_path / "search"
    args = [sys.executable, *SEARCH[1:], f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    seen = []
    try:
        for line in first.stdout:  # kill it the moment the second trial has been told to the study
            seen.append(line)
            if line.startswith("Trial 1:"):
                os.killpg(first.pid, signal.SIGKILL)
                break
    finally:
        first.wait(timeout=240)
    assert any(line.startswith("Trial 1:") for line in seen), "".join(seen)[-3000:]
    reports = {n: (sweep / str(n) / "report.json").stat().st_mtime_ns for n in (0, 1)}
    assert not (sweep / "2" / "report.json").exists()

    second = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    assert "2 of 3 trials finished" in second.stdout
    told = [line for line in second.stdout.splitlines() if line.startswith("Trial ")]
    assert len(told) == 1 and told[0].startswith("Trial 2:"), told  # only the third trial ran
    assert {n: (sweep / str(n) / "report.json").stat().st_mtime_ns for n in (0, 1)} == reports
    trials = optuna.load_study(study_name="search", storage=f"sqlite:///{sweep / 'optuna.db'}").trials
    assert [(t.number, t.state.name) for t in trials] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]
    # the continued process asked its sampler for new points, not the first process's again
    # (a seeded sampler restarting its stream gave trial 2 the parameters of trial 0)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 3, [t.params for t in trials]
    for trial in trials:  # each value is the run's best validation loss, from its own report
        report = json.loads((sweep / str(trial.number) / "report.json").read_text())
        assert report["validation"]["metric"] == "val/loss"
        assert trial.value == pytest.approx(report["validation"]["best"])
    table = (sweep / "trials.csv").read_text().splitlines()
    assert table[0].startswith("trial,state,value,model.dropout,trainer.lr,test/loss,best,run")
    assert [row.split(",")[:2] for row in table[1:]] == [["0", "complete"], ["1", "complete"], ["2", "complete"]]
    assert sum(row.split(",")[-2] == "best" for row in table[1:]) == 1
    assert "# Search trials (3: 3 complete)" in (sweep / "trials.md").read_text()
    assert "search.trial_id" not in (sweep / "summary.csv").read_text()  # the study link is not a setting


@pytest.mark.slow
def test_a_hopeless_trial_is_pruned_and_recorded(tmp_path):
    """Three earlier trials of the study reached a validation loss of 0.1 after every epoch; a new
    trial (about 1.4 on 32 px shapes) is below their median after its first epoch and is pruned
    there, not trained for its three epochs."""
    import optuna
    from optuna.distributions import FloatDistribution

    sweep = tmp_path / "pruning"
    sweep.mkdir()
    study = optuna.create_study(study_name="pruning", storage=f"sqlite:///{sweep / 'optuna.db'}")
    space = {"trainer.lr": FloatDistribution(1e-4, 3e-2, log=True), "model.dropout": FloatDistribution(0.0, 0.5)}
    for lr in (1e-3, 2e-3, 3e-3):
        study.add_trial(optuna.trial.create_trial(params={"trainer.lr": lr, "model.dropout": 0.1}, distributions=space,
                                                  value=0.1, intermediate_values={0: 0.1, 1: 0.1, 2: 0.1}))
    result = subprocess.run(
        [sys.executable, *SEARCH[1:], "hydra.sweeper.n_trials=4", "trainer.max_epochs=3",
         "hydra.sweeper.pruner.n_warmup_steps=0", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 of 4 trials finished" in result.stdout
    trials = optuna.load_study(study_name="pruning", storage=f"sqlite:///{sweep / 'optuna.db'}").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3 + ["PRUNED"]
    pruned = json.loads((sweep / "3" / "pruned.json").read_text())
    assert list(pruned["values_by_epoch"]) == ["0"] and pruned["values_by_epoch"]["0"] > 0.1
    assert not (sweep / "3" / "report.json").exists()
    assert "(4: 3 complete, 1 pruned)" in (sweep / "trials.md").read_text()
    assert (sweep / "summary.csv").read_text().splitlines()[1].endswith(",pruned")  # vs_best column: its state
