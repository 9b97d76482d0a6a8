"""Hyperparameter searches: Optuna (TPE) behind Hydra's sweeper interface, with a study that
outlives the process.

``python -m fishbear.train -m hparams_search=bears_optuna`` asks Optuna for a trial's parameters,
launches the run through whatever ``hydra/launcher`` is configured (in-process, joblib, submitit
on SLURM), tells Optuna its value, and keeps every trial in an SQLite study in the sweep folder.
Started again with the same ``hydra.sweep.dir``, it continues that study: finished trials are not
run again, a trial that was running when the search was killed is run again in its own folder
(where the run resumes from its ``last.ckpt``), and only the trials still missing are asked for.

Why not hydra-optuna-sweeper: its last release (1.3.0) requires ``optuna<3``, and Optuna 2.10 fails
to open an SQLite study under SQLAlchemy 2 (``AssertionError`` in its schema version check, measured
here), so there is no persistent study with it; Optuna's Lightning pruning callback also needs
Optuna 3 or later. The config keys mirror that sweeper's (``direction``, ``study_name``,
``storage``, ``n_trials``, ``n_jobs``, ``sampler``, ``pruner``, ``params``) so configs read the same.

The Hydra plugin class lives in ``hydra_plugins.fishbear_optuna_sweeper`` (Hydra instantiates
sweepers only from that namespace); the work is here.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from fishbear.core.atomic import atomic_write_text
from fishbear.core.errors import ConfigError
from fishbear.engine.commandline import user_errors_exit

log = logging.getLogger(__name__)

STUDY_FILE = "optuna.db"
PRUNED_FILE = "pruned.json"  # left in a pruned trial's run folder (it has no report)
# the overrides through which a trial's run finds its study and trial (for pruning); not parameters
LINK_KEY = "search"


def distribution(override: Override) -> Any:
    """An Optuna distribution for one swept override: ``interval(a, b)`` (``tag(log, ...)`` for a
    log scale, ``tag(int, ...)`` for whole numbers: Hydra reads interval ends as floats),
    ``choice(...)`` / ``a,b,c`` and ``range(...)``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    sweep = override.value()
    if isinstance(sweep, IntervalSweep):
        log_scale = "log" in sweep.tags
        if "int" in sweep.tags:
            return IntDistribution(int(sweep.start), int(sweep.end), log=log_scale)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log_scale)
    if isinstance(sweep, RangeSweep):
        values = list(override.sweep_iterator())
        return CategoricalDistribution(values)
    if isinstance(sweep, ChoiceSweep):
        values = list(override.sweep_iterator())
        if all(isinstance(v, (int, float, str, bool)) or v is None for v in values):
            return CategoricalDistribution(values)
        # lists and dicts (e.g. a crop scale) travel as their override text
        return CategoricalDistribution([Override._get_value_element_as_str(v) for v in values])
    raise ConfigError(f"cannot search over {override.input_line!r}: use interval(a, b), tag(log, interval(a, b)), "
                      "tag(int, interval(a, b)), choice(a, b, ...) or range(a, b)")


def search_space(params: dict[str, str] | None, arguments: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The distributions to search (from ``hydra.sweeper.params`` and swept command-line
    arguments; the command line wins) and the fixed overrides every trial gets."""
    parser = OverridesParser.create()
    given = [f"{key}={value}" for key, value in (params or {}).items()]
    space: dict[str, Any] = {}
    fixed: list[str] = []
    for override in parser.parse_overrides(given) + parser.parse_overrides(list(arguments)):
        key = override.get_key_element()
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            space.pop(key, None)
            fixed = [f for f in fixed if parser.parse_override(f).get_key_element() != key]
            fixed.append(override.input_line)
    return space, fixed


def _as_override(key: str, value: Any) -> str:
    return f"{key}={Override._get_value_element_as_str(value)}" if not isinstance(value, str) else f"{key}={value}"


def _direction(direction: str) -> str:
    named = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}
    if str(direction) not in named:
        raise ConfigError(f"hydra.sweeper.direction={direction!r}: give maximize or minimize (or max / min)")
    return named[str(direction)]


class OptunaSearch(Sweeper):
    """Hydra sweeper that runs an Optuna study; see the module docstring."""

    def __init__(self, direction: str = "minimize", n_trials: int = 20, n_jobs: int = 1,
                 sampler: Any = None, pruner: Any = None, params: dict[str, str] | None = None,
                 study_name: str | None = None, storage: str | None = None) -> None:
        self.direction = direction
        self.n_trials, self.n_jobs = int(n_trials), max(1, int(n_jobs))
        self.sampler, self.pruner = sampler, pruner  # built by Hydra from their _target_
        self.params = dict(params or {})
        self.study_name, self.storage = study_name, storage
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    @user_errors_exit  # a bad search space or a mismatched study: one line and status 2, as in a run
    def sweep(self, arguments: list[str]) -> list[Any]:
        import optuna

        assert self.config is not None and self.launcher is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        space, fixed = search_space(self.params, arguments)
        if not space:
            raise ConfigError("the search has no parameters: set hydra.sweeper.params (see hparams_search/*.yaml) "
                              "or give key=interval(a, b) / key=choice(a, b) on the command line")
        storage = self.storage or f"sqlite:///{sweep_dir / STUDY_FILE}"
        name = self.study_name or sweep_dir.name
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            study_name=name, storage=storage, load_if_exists=True, direction=_direction(self.direction),
            sampler=self.sampler, pruner=self.pruner)
        _check_same_search(study, fixed, space, sweep_dir)
        self._continue_sampling(study)
        finished, stale = _progress(study)
        print(f"Optuna study {name!r} ({storage}): {len(finished)} of {self.n_trials} trials finished"
              + (f", {len(stale)} interrupted (run again in their folders)" if stale else "")
              + f".\nA killed search continues with the same command and hydra.sweep.dir={sweep_dir}", flush=True)
        returns = []
        pending = list(stale)
        while True:
            finished, _ = _progress(study)
            room = self.n_trials - len(finished) - len(pending)
            pending += [study.ask(space) for _ in range(max(0, min(self.n_jobs - len(pending), room)))]
            if not pending:
                break
            batch, pending = pending[: self.n_jobs], pending[self.n_jobs:]
            returns += self._run(study, batch, fixed, storage, name)
            write_trials(study, sweep_dir)
        path = write_trials(study, sweep_dir)
        print(f"\nSearch trials: {path}\n{path.read_text()}", flush=True)
        return returns

    def _continue_sampling(self, study: Any) -> None:
        """A seeded sampler starts its random stream afresh in every process, so a continued study
        would ask for the parameters of its first trials again (measured: a killed search's third
        trial repeated its first). The sampler is rebuilt with its seed moved on by the trials the
        study already holds: still reproducible, never the same stream twice."""
        from hydra.utils import instantiate

        node = OmegaConf.select(self.config, "hydra.sweeper.sampler") if self.config is not None else None
        trials = len(study.get_trials(deepcopy=False))
        if node is None or not trials or OmegaConf.select(node, "seed") is None:
            return
        study.sampler = instantiate(node, seed=int(node.seed) + trials)

    def _run(self, study: Any, trials: list[Any], fixed: list[str], storage: str, name: str) -> list[Any]:
        """Launch trials in runs of consecutive numbers (a run's folder is its trial number),
        then tell the study each outcome."""
        results = []
        for group in _consecutive(trials):
            overrides = [[*fixed, *(_as_override(k, v) for k, v in trial.params.items()),
                          f"+{LINK_KEY}.storage={storage}", f"+{LINK_KEY}.study={name}",
                          f"+{LINK_KEY}.trial_id={trial._trial_id}"] for trial in group]
            self.validate_batch_is_legal(overrides)
            returns = self.launcher.launch(overrides, initial_job_idx=group[0].number)
            for trial, ret in zip(group, returns):
                _tell(study, trial, ret)
            results += returns
        return results


def _consecutive(trials: list[Any]) -> list[list[Any]]:
    groups: list[list[Any]] = []
    for trial in sorted(trials, key=lambda t: t.number):
        if groups and groups[-1][-1].number + 1 == trial.number:
            groups[-1].append(trial)
        else:
            groups.append([trial])
    return groups


def _progress(study: Any) -> tuple[list[Any], list[Any]]:
    """Finished trials, and trials left running by a search that was killed (one search process
    per study: the launcher runs trials in parallel, so a running trial found at the start is
    an orphan)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    running = [optuna_trial(study, t._trial_id) for t in trials if t.state == TrialState.RUNNING]
    return finished, running


def optuna_trial(study: Any, trial_id: int) -> Any:
    import optuna

    return optuna.Trial(study, trial_id)


def _check_same_search(study: Any, fixed: list[str], space: dict[str, Any], sweep_dir: Path) -> None:
    """A study continued with other fixed overrides or another space would mix two searches."""
    from optuna.distributions import distribution_to_json

    signature = {"overrides": sorted(fixed), "space": {k: distribution_to_json(v) for k, v in sorted(space.items())}}
    recorded = study.user_attrs.get("search")
    if recorded is None:
        study.set_user_attr("search", signature)
    elif recorded != signature:
        raise ConfigError(
            f"{sweep_dir / STUDY_FILE} holds a search with other settings ({recorded['overrides']}, parameters "
            f"{sorted(recorded['space'])}) than this command ({signature['overrides']}, parameters "
            f"{sorted(signature['space'])}). Continue it with its own settings, or start a new search in another "
            "hydra.sweep.dir.")


def _tell(study: Any, trial: Any, ret: Any) -> None:
    import optuna
    from hydra.core.utils import JobStatus
    from optuna.trial import TrialState

    outcome = getattr(ret, "_return_value", None)
    if ret.status == JobStatus.COMPLETED and isinstance(outcome, (int, float)) and math.isfinite(outcome):
        study.tell(trial, float(outcome))
        print(f"Trial {trial.number}: {float(outcome):.4f} {trial.params}", flush=True)
    elif isinstance(outcome, optuna.TrialPruned):
        study.tell(trial, state=TrialState.PRUNED)
        print(f"Trial {trial.number}: pruned ({outcome})", flush=True)
    else:
        why = (f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, BaseException)
               else f"the run returned {outcome!r}, not a number (is optimized_metric in its report?)")
        study.set_trial_user_attr(trial._trial_id, "error", why[:500])
        study.tell(trial, state=TrialState.FAIL)
        print(f"Trial {trial.number}: failed ({why.splitlines()[0][:300]})", file=sys.stderr, flush=True)


def trial_rows(study: Any, sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per trial: number, state, objective value, parameters, the run's test figure."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        run = sweep_dir / str(trial.number)
        report = json.loads((run / "report.json").read_text()) if (run / "report.json").is_file() else {}
        monitor = report.get("monitor", {}).get("metric")
        rows.append({"trial": trial.number, "state": trial.state.name.lower(), "value": trial.value,
                     "params": dict(trial.params), "run": str(run) if run.is_dir() else "",
                     "test": (monitor, report.get("metrics", {}).get(monitor)) if monitor else None,
                     "error": trial.user_attrs.get("error", "")})
    return rows


def write_trials(study: Any, sweep_dir: Path) -> Path:
    """``trials.csv`` and ``trials.md`` in the sweep folder, rewritten after every batch, so a
    killed search leaves an up-to-date table; the best finished trial is marked."""
    rows = trial_rows(study, sweep_dir)
    params = sorted({k for r in rows for k in r["params"]})
    complete = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    maximize = study.direction.name == "MAXIMIZE"
    best = (max if maximize else min)(complete, key=lambda r: r["value"])["trial"] if complete else None
    test_name = next((r["test"][0] for r in rows if r["test"]), None)
    header = ["trial", "state", "value", *params, *([test_name] if test_name else []), "best", "run"]
    table = []
    for r in rows:
        test_value = r["test"][1] if r["test"] else None
        table.append([str(r["trial"]), r["state"], "" if r["value"] is None else f"{r['value']:.4f}",
                      *[_param_text(r["params"].get(p)) for p in params],
                      *([f"{test_value:.4f}" if test_value is not None else ""] if test_name else []),
                      "best" if r["trial"] == best else "", Path(r["run"]).name if r["run"] else ""])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(table)
    atomic_write_text(sweep_dir / "trials.csv", buffer.getvalue())
    objective = (study.user_attrs.get("objective") or "the run's optimized_metric")
    states = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running")}
    md = [f"# Search trials ({len(rows)}: " + ", ".join(f"{n} {s}" for s, n in states.items() if n) + ")", "",
          f"Study `{study.study_name}`, {study.direction.name.lower()} {objective} (the validation figure the "
          "trials were chosen by); the test column is each run's own report. The test split took no part "
          "in the choice, so the best trial's test figure is a fair estimate for it.", "",
          "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(row) + " |" for row in table]
    errors = [f"- trial {r['trial']}: {r['error']}" for r in rows if r["error"]]
    atomic_write_text(sweep_dir / "trials.md", "\n".join(md + ([""] + errors if errors else [])) + "\n")
    return sweep_dir / "trials.md"


def _param_text(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
