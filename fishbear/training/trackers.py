"""Experiment trackers beside TensorBoard: MLflow and Weights & Biases, through Lightning's own
loggers, with what a team comparing runs needs set for them.

- Where a run goes: MLflow's ``MLFLOW_TRACKING_URI`` (a tracking server) when set, else a SQLite
  file and an artifact folder under the outputs root (``outputs/mlflow.db``, ``outputs/mlartifacts``),
  so nothing is written outside fishbear's folders; W&B's ``WANDB_MODE`` / ``WANDB_PROJECT``, its
  files in the run folder.
- What a run is called and grouped under: a sweep's or an Optuna search's trials are runs of one
  group (MLflow's ``sweep`` tag, W&B's ``group``), each named by its overrides.
- What it carries: the settings and the metrics per epoch (Lightning's logging), the best
  checkpoint (``log_model``) and, at the end, the run's report and figures (:func:`log_files`).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fishbear.core.errors import ConfigError


@dataclass(frozen=True)
class RunName:
    """What a tracker calls this run, and the group (a sweep) it belongs to (``None``: alone)."""

    name: str
    group: str | None


def run_name(run_dir: str | Path) -> RunName:
    """A sweep's trial: ``<sweep folder>/<job number>: <its overrides>`` in the group of the sweep
    folder; a single run: its folder's name, no group."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra = HydraConfig.get()
        if hydra.mode == RunMode.MULTIRUN:
            sweep = Path(hydra.sweep.dir).name
            overrides = hydra.job.override_dirname or ""
            return RunName(f"{sweep}/{hydra.job.num}" + (f": {overrides}" if overrides else ""), sweep)
    except ValueError:  # no Hydra job (a test composing the config by hand)
        pass
    return RunName(Path(run_dir).name, None)


def _needs(module: str, logger: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"logger={logger} needs the {module} package: pip install 'fishbear[trackers]' "
                          f"(or pick logger=tensorboard, csv or none).")


def mlflow_logger(output_root: str, run_dir: str, experiment_name: str = "fishbear", tracking_uri: str | None = None,
                  log_model: bool = True, tags: dict[str, str] | None = None) -> Any:
    """Lightning's ``MLFlowLogger``: to ``tracking_uri`` or ``MLFLOW_TRACKING_URI`` (the server
    keeps the artifacts), else to ``<output_root>/mlflow.db`` with artifacts in ``<output_root>/mlartifacts``."""
    _needs("mlflow", "mlflow")
    from lightning.pytorch.loggers import MLFlowLogger

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    artifacts = None
    if not uri:
        root = Path(output_root).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        uri, artifacts = f"sqlite:///{root / 'mlflow.db'}", (root / "mlartifacts").as_uri()
    name = run_name(run_dir)
    run_tags = {"run_dir": str(Path(run_dir).resolve()), **({"sweep": name.group} if name.group else {}), **(tags or {})}
    return MLFlowLogger(experiment_name=experiment_name, run_name=name.name, tracking_uri=uri, tags=run_tags,
                        log_model=log_model, artifact_location=artifacts)


def wandb_logger(run_dir: str, project: str = "fishbear", offline: bool | None = None, log_model: bool = True,
                 entity: str | None = None) -> Any:
    """Lightning's ``WandbLogger``, its files in ``<run>/wandb``; ``offline`` (default: ``WANDB_MODE``
    is ``offline``, or no API key is set) writes them for ``wandb sync`` later, with no account."""
    _needs("wandb", "wandb")
    from lightning.pytorch.loggers import WandbLogger

    if offline is None:
        offline = os.environ.get("WANDB_MODE") == "offline" or not (os.environ.get("WANDB_API_KEY")
                                                                   or (Path.home() / ".netrc").is_file())
    name = run_name(run_dir)
    return WandbLogger(name=name.name, group=name.group, project=os.environ.get("WANDB_PROJECT", project), entity=entity,
                       save_dir=str(run_dir), offline=bool(offline), log_model=False if offline else log_model)


def log_files(logger: Any, paths: list[Path]) -> None:
    """The run's report and figures as the tracker's files: MLflow's artifacts (``report/``), W&B's
    run files; then W&B's run is finished (else the next trial of a sweep run in this process would
    write into it). Loggers without files (TensorBoard has the report as text, CSV has none) are left."""
    writer = FILE_WRITERS.get(type(logger).__name__)
    if writer is not None:
        for path in paths:
            writer(logger, path)
    if type(logger).__name__ == "WandbLogger":
        logger.experiment.finish()


def _mlflow_file(logger: Any, path: Path) -> None:
    logger.experiment.log_artifact(logger.run_id, str(path), "report")


def _wandb_file(logger: Any, path: Path) -> None:
    logger.experiment.save(str(path), base_path=str(path.parent), policy="now")


FILE_WRITERS = {"MLFlowLogger": _mlflow_file, "WandbLogger": _wandb_file}
