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
import yaml
from omegaconf import DictConfig

import fishbear.engine.config  # noqa: F401  (registers the resolvers the configs use)
from fishbear.core.atomic import remove_stray_temporaries
from fishbear.core.errors import CheckpointError, ConfigError, FishbearError
from fishbear.engine.commandline import route_library_logs_to_root, run_hydra_main, user_errors_exit
from fishbear.engine.run_folder import refuse_foreign_folder, refuse_other_overrides

log = logging.getLogger(__name__)

# torch, Lightning and the kinds are imported inside the functions below, after Hydra has composed
# the config: a mistyped override is answered in a second, not after ten.


def _resolve_ckpt_path(ckpt_path: str | None, run_dir: Path, kind: Any = None) -> str | None:
    if ckpt_path in (None, ""):
        return None
    path = run_dir / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if ckpt_path == "last" and not path.is_file():
        overrides = run_dir / ".hydra" / "overrides.yaml"
        raise CheckpointError(
            f"The run in {run_dir} stopped before its first checkpoint ({path} does not exist): there is nothing "
            f"to resume. Start it again as a new run with the same overrides (listed in {overrides})."
        )
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint {path} does not exist. Give ckpt_path=<run folder>/checkpoints/last.ckpt of the run "
            "to continue, or resume a whole run with: python -m fishbear.train --resume <run folder>"
        )
    from fishbear.engine.checkpoint import load_checkpoint

    # a text file, a truncated download, another program's file or another kind's: one line, before training
    load_checkpoint(path, kind)
    return str(path)


def _check_resumable(resume_from: str, cfg: DictConfig, run_dir: Path) -> None:
    """Before any data is read: the checkpoint must be of this run (same model settings; in its
    own folder, the same overrides), or resuming it would train another run's state."""
    from omegaconf import OmegaConf

    from fishbear.engine.checkpoint import read_meta
    from fishbear.engine.run_folder import check_same_run

    meta = read_meta(resume_from)
    wanted = OmegaConf.to_container(cfg.model, resolve=True)
    assert isinstance(wanted, dict)
    if meta.model_cfg != wanted:
        differs = sorted(k for k in set(meta.model_cfg) | set(wanted) if meta.model_cfg.get(k) != wanted.get(k))
        raise CheckpointError(
            f"{resume_from} holds a network built with other model settings ({', '.join(differs)}: "
            f"{ {k: meta.model_cfg.get(k) for k in differs} } there, { {k: wanted.get(k) for k in differs} } here): "
            "it cannot continue this run. Resume it with its own settings, or start a new run.")
    if Path(resume_from).resolve().parent.parent == run_dir.resolve():
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
        check_same_run(run_dir, meta.provenance.run, overrides)


def _check_same_data(resume_from: str, datamodule: Any) -> None:
    from fishbear.engine.checkpoint import read_meta
    from fishbear.engine.run_folder import check_same_data, fingerprint

    meta = read_meta(resume_from)
    if meta.classes != tuple(datamodule.classes):
        raise CheckpointError(f"{resume_from} was trained on classes {list(meta.classes)}; data.root now has "
                              f"{datamodule.classes}. Resume on the same data, or start a new run.")
    check_same_data(meta.provenance.data_fingerprint, fingerprint(datamodule.catalog.splits, datamodule.root),
                    resume_from)


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
    from fishbear.engine.run_folder import FolderLock, check_owner
    from fishbear.engine.settings import TrainerSettings

    route_library_logs_to_root()
    started = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    _check_one_folder_under_torchrun()
    settings = TrainerSettings.from_config(cfg.trainer)
    if settings.lightning.get("sync_batchnorm") and settings.lightning.get("accelerator") == "cpu":
        # torch's SyncBatchNorm runs on GPUs only; on CPU processes each normalise their own batch
        log.info("trainer.sync_batchnorm is off on CPU (torch's SyncBatchNorm needs GPUs)")
        settings.lightning.sync_batchnorm = False
    check_config(cfg, settings)  # every mistake reported before any data is generated or read
    check_owner(run_dir, "train")  # a folder of the user's is refused; fishbear's own is marked
    lock = FolderLock(run_dir).acquire()  # one process per run folder (held until the process ends)
    resume_from = _resolve_ckpt_path(cfg.get("ckpt_path") or _left_behind(run_dir), run_dir, task_kind(cfg))
    if resume_from is not None:
        _check_resumable(resume_from, cfg, run_dir)
    _quiet_ddp_advice()
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule, task = build_experiment(cfg, settings)
    task.process_started = started
    trainer = build_trainer(cfg, settings, run_dir)

    if resume_from is not None:
        _check_same_data(resume_from, datamodule)
        remove_stray_temporaries(run_dir)  # what the killed process was writing when it died
        finished = _finished_report(resume_from, trainer.max_epochs, run_dir)
        if finished is not None:
            return finished
    fit_started = time.perf_counter()
    _fit(trainer, task, datamodule, resume_from, cfg, run_dir)
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


def _check_one_folder_under_torchrun() -> None:
    """Under torchrun every process composes its own config, so a time-stamped run folder would be
    one per process (the Hydra-meets-DDP trap); only a folder given on the command line is the
    same for all. (Lightning's own DDP launcher and submitit hand the parent's folder on.)"""
    import os

    from hydra.core.hydra_config import HydraConfig

    if "TORCHELASTIC_RUN_ID" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return
    given = HydraConfig.initialized() and any(
        o.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for o in HydraConfig.get().overrides.hydra)
    if not given:
        raise ConfigError("under torchrun, give the run folder on the command line (e.g. hydra.run.dir="
                          "outputs/resnet34-4gpu): each process composes its own config, and only a given "
                          "folder is the same for all of them")


def _left_behind(run_dir: Path) -> str | None:
    """``last`` when this run's folder already holds ``checkpoints/last.ckpt``: the same run
    entered again (a SLURM job requeued after preemption or timeout, a search trial run again
    after the search was killed), which continues rather than starting over. A new run's folder
    is new (time-stamped, or a sweep number not used before), so it never finds one."""
    if not (run_dir / "checkpoints" / "last.ckpt").is_file():
        return None
    log.info("%s already holds checkpoints/last.ckpt: continuing that run", run_dir)
    return "last"


def _fit(trainer: Any, task: Any, datamodule: Any, resume_from: str | None, cfg: DictConfig, run_dir: Path) -> None:
    """``trainer.fit``; a run that is a trial of an Optuna search (``fishbear.engine.search.sweeper``) reports its
    validation figure after every epoch and stops when the study prunes it."""
    from fishbear.engine.search.sweeper import link_of, pruning_callback, record_pruned

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


def _best_validation(checkpoint: Any, task: Any) -> dict[str, Any] | None:
    """The best validation value of the task's monitor (what the best checkpoint was chosen by)."""
    score = getattr(checkpoint, "best_model_score", None)
    if score is None:
        return None
    return {"metric": task.monitor, "mode": task.monitor_mode, "best": float(score)}


def _finished_report(ckpt_path: str, max_epochs: int, run_dir: Path) -> dict[str, Any] | None:
    """A run resumed from a checkpoint that already has all its epochs is finished: say so, and
    hand back its report, instead of training nothing and testing again. None when there is
    more to train (or the report was never written: then it is tested and reported now)."""
    import json

    from fishbear.engine.checkpoint import load_checkpoint

    completed = load_checkpoint(ckpt_path).completed_epochs()
    report = run_dir / "report.json"
    if max_epochs is None or max_epochs < 0 or completed < max_epochs or not report.is_file():
        return None
    print(f"Run {run_dir} is finished: it has trained its {completed} epoch(s) (report: {run_dir / 'report.md'}). "
          f"To train on, resume with trainer.max_epochs larger than {completed}.", flush=True)
    return json.loads(report.read_text())


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@user_errors_exit
def main(cfg: DictConfig) -> float | None:
    from fishbear.engine.experiment import monitor_value

    return monitor_value(train(cfg), cfg)


def resume_argv(argv: list[str]) -> list[str]:
    """``--resume RUN_DIR`` becomes the run's own overrides, its folder and ``ckpt_path=last``."""
    if len(argv) < 3 or argv[1] != "--resume":
        return argv
    run_dir = Path(argv[2])
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.is_file():
        print(f"error: {run_dir} is not a fishbear run folder (no .hydra/overrides.yaml)", file=sys.stderr)
        raise SystemExit(2)
    old = [o for o in yaml.safe_load(overrides_file.read_text()) or []
           if not o.startswith(("hydra.run.dir=", "ckpt_path="))]
    targets = [o for o in old if "_target_" in o.split("=", 1)[0]]
    if targets:  # classes are chosen by config groups; a run folder must not name code to run
        print(f"error: {overrides_file} overrides a _target_ ({', '.join(targets)}); --resume applies only "
              "fishbear's own config choices. Remove that line, or start a new run.", file=sys.stderr)
        raise SystemExit(2)
    return [argv[0], *old, *argv[3:], f"hydra.run.dir={run_dir}", "ckpt_path=last"]


def _precheck(argv: list[str]) -> None:
    """Before Hydra writes into the run folder: fishbear's (or new), and this run's."""
    refuse_foreign_folder(argv, "train")
    refuse_other_overrides(argv)


def cli(argv: list[str]) -> int:
    """``fishbear train ...`` and ``python -m fishbear.train ...`` (``--resume RUN_DIR`` too)."""
    sys.argv[1:] = resume_argv([sys.argv[0], *argv])[1:]
    run_hydra_main(main, sys.argv[1:], "train", _precheck)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
