"""Train, test and report: ``python -m fishbear.train [group=choice ...] [key=value ...]``.

``python -m fishbear.train --resume RUN_DIR`` continues a killed run in its own folder from
``checkpoints/last.ckpt``, with the overrides it was started with.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

import fishbear.engine.config  # noqa: F401  (registers the resolvers the configs use)
from fishbear.core.errors import ConfigError, FishbearError
from fishbear.engine.commandline import route_library_logs_to_root, run_hydra_main, user_errors_exit
from fishbear.engine.resume import resume_argv
from fishbear.engine.run_folder import refuse_foreign_folder, refuse_other_overrides

log = logging.getLogger(__name__)

# torch, Lightning and the kinds are imported inside the functions below, after Hydra has composed
# the config: a mistyped override is answered in a second, not after ten.


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then test the best checkpoint and write the report; returns the report."""
    import lightning as L

    from fishbear.engine.experiment import (
        build_experiment,
        build_trainer,
        check_config,
        task_kind,
        test_and_report,
    )
    from fishbear.engine.resume import Resumption
    from fishbear.engine.run_folder import FolderLock, check_one_folder_under_torchrun, check_owner
    from fishbear.engine.search.trial import fit
    from fishbear.engine.settings import TrainerSettings

    route_library_logs_to_root()
    started = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    check_one_folder_under_torchrun()
    settings = TrainerSettings.from_config(cfg.trainer)
    check_config(cfg, settings)  # every mistake reported before any data is generated or read
    check_owner(run_dir, "train")  # a folder of the user's is refused; fishbear's own is marked
    lock = FolderLock(run_dir).acquire()  # one process per run folder (held until the process ends)
    resumption = Resumption.plan(cfg, run_dir, task_kind(cfg))  # checked before any data is read
    _quiet_ddp_advice()
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule, task = build_experiment(cfg, settings)
    task.process_started = started
    trainer = build_trainer(cfg, settings, run_dir)

    finished = resumption.finished_report(datamodule, trainer.max_epochs)
    if finished is not None:
        return finished
    fit_started = time.perf_counter()
    fit(trainer, task, datamodule, resumption.checkpoint, cfg, run_dir)
    fit_seconds = task.fit_seconds_before + time.perf_counter() - fit_started
    # a resumed run's wall time counts the earlier processes too (read now: testing the best
    # checkpoint loads that checkpoint's own, earlier, figures into the task)
    started -= task.wall_seconds_before
    if trainer.interrupted:
        raise FishbearError(f"Training was interrupted; continue with: python -m fishbear.train --resume {run_dir}")

    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    _after_fit(trainer, task, datamodule, best)
    _ = lock  # the folder stays this process's until the report is written
    return test_and_report(
        trainer, task, datamodule, cfg, run_dir, started, ckpt_path=best, run_test=cfg.get("test", True),
        config={**settings.summary(), "max_epochs": trainer.max_epochs},
        extra={"epochs": trainer.current_epoch, "best_checkpoint": best, "fit_seconds": fit_seconds,
               "validation": _best_validation(checkpoint, task)},
    )


def _after_fit(trainer: Any, task: Any, datamodule: Any, best: str | None) -> None:
    """A kind's work on the best weights between fitting and testing (multi-label: tune thresholds);
    the engine loads those weights and writes the result into the best checkpoint, not the kind."""
    if not task.tunes_after_fit:
        return
    from fishbear.engine.checkpoint import load_checkpoint, save_task_into

    if best:
        task.load_state_dict(load_checkpoint(best, kind=task.kind).state_dict)
    if task.after_fit(trainer, datamodule) and best and trainer.is_global_zero:
        save_task_into(best, task)


def _quiet_ddp_advice() -> None:
    """Lightning's DDP advice that does not apply here: test results are gathered from every process
    and the sampler's repeats dropped (``BaseTask.merge_test_records``), epoch metrics come from
    torchmetrics, whose ``compute`` already combines the processes, and the training loss is each
    process's own on purpose (a sync every step)."""
    import warnings

    warnings.filterwarnings("ignore", message=r"Using `DistributedSampler` with the dataloaders\. During `trainer\.test")
    warnings.filterwarnings("ignore", message=r"It is recommended to use `self\.log\('(train|val|test)/")


def _best_validation(checkpoint: Any, task: Any) -> dict[str, Any] | None:
    """The best validation value of the task's monitor (what the best checkpoint was chosen by)."""
    score = getattr(checkpoint, "best_model_score", None)
    if score is None:
        return None
    return {"metric": task.monitor, "mode": task.monitor_mode, "best": float(score)}


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@user_errors_exit
def main(cfg: DictConfig) -> float | None:
    from fishbear.engine.experiment import monitor_value

    return monitor_value(train(cfg), cfg)


def _precheck(argv: list[str]) -> None:
    """Before Hydra writes into the run folder: fishbear's (or new), and this run's."""
    refuse_foreign_folder(argv, "train")
    refuse_other_overrides(argv)


def cli(argv: list[str]) -> int:
    """``fishbear train ...`` and ``python -m fishbear.train ...`` (``--resume RUN_DIR`` too)."""
    try:
        sys.argv[1:] = resume_argv([sys.argv[0], *argv])[1:]
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_hydra_main(main, sys.argv[1:], "train", _precheck)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
