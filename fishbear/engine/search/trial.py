"""The trial's side of a search: a run launched by the Optuna sweeper reports its validation
figure after every epoch, and stops (its folder saying why) when the study prunes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fishbear.core.atomic import atomic_write_text
from fishbear.engine.search.sweeper import LINK_KEY, PRUNED_FILE, optuna_trial


def fit(trainer: Any, task: Any, datamodule: Any, resume_from: str | None, cfg: DictConfig, run_dir: Path) -> None:
    """``trainer.fit``; a run that is a trial of a search reports to its study and is pruned by it."""
    link = link_of(cfg)
    if link is None:
        trainer.fit(task, datamodule=datamodule, ckpt_path=resume_from)
        return
    import optuna

    pruning = pruning_callback(link, task.monitor, cfg.get("optimized_metric") or task.monitor)
    trainer.callbacks.append(pruning)
    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=resume_from)
        pruning.check_pruned()  # under DDP the callback stops every process, then this raises
    except optuna.TrialPruned as pruned:
        if trainer.is_global_zero:
            record_pruned(run_dir, pruned, pruning)
        raise


def pruning_callback(link: DictConfig, monitor: str, objective: str) -> Any:
    """Optuna's Lightning pruning callback for the trial this run is (``+search.*`` overrides set
    by the sweeper): reports ``monitor`` after every validation and stops hopeless trials."""
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # the pruner is not kept in the study's storage: the run builds the search's own
    study = optuna.load_study(study_name=str(link.study), storage=str(link.storage), pruner=_search_pruner())
    if study.user_attrs.get("objective") != objective:
        study.set_user_attr("objective", objective)
    return PyTorchLightningPruningCallback(optuna_trial(study, int(link.trial_id)), monitor=monitor)


def _search_pruner() -> Any:
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    pruner = OmegaConf.select(HydraConfig.get(), "sweeper.pruner") if HydraConfig.initialized() else None
    return instantiate(pruner) if pruner is not None else None


def record_pruned(run_dir: Path, error: BaseException, callback: Any) -> None:
    """A pruned trial's folder says so (it has checkpoints and logs but no report)."""
    values = callback._trial.study._storage.get_trial(callback._trial._trial_id).intermediate_values
    atomic_write_text(run_dir / PRUNED_FILE, json.dumps({
        "why": str(error), "monitor": callback.monitor, "values_by_epoch": {str(k): v for k, v in values.items()}},
        indent=2))


def link_of(cfg: DictConfig) -> DictConfig | None:
    """The study and trial this run belongs to, or None for a run outside a search."""
    link = cfg.get(LINK_KEY)
    return link if link is not None and OmegaConf.select(link, "trial_id") is not None else None
