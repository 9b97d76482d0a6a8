"""Whether a training run continues, and from what: the resume policy in one place.

A run continues from a checkpoint when it is asked to (``ckpt_path=...``, or ``--resume RUN``,
which becomes the run's own overrides and ``ckpt_path=last``) or when its own folder already holds
``checkpoints/last.ckpt`` (the same run entered again: a SLURM job requeued, a search trial run
again after the search was killed). Before any data is read the checkpoint must be readable, of
this kind, built with the same model settings and, in its own folder, started with the same
overrides; once the data is read it must be the same data. A checkpoint that has all its epochs is
a finished run: its report is handed back instead of training nothing and testing again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from fishbear.core.atomic import remove_stray_temporaries
from fishbear.core.errors import CheckpointError, ConfigError
from fishbear.engine.run_folder import check_same_data, check_same_run, fingerprint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resumption:
    """The checkpoint a run continues from (None: a new run) and the run's folder."""

    checkpoint: str | None
    run_dir: Path

    @classmethod
    def plan(cls, cfg: DictConfig, run_dir: Path, kind: Any = None) -> Resumption:
        """Which checkpoint this run continues from, checked against the config before any data is read."""
        checkpoint = _checkpoint(cfg.get("ckpt_path") or _left_behind(run_dir), run_dir, kind)
        if checkpoint is not None:
            _check_same_model(checkpoint, cfg, run_dir)
        return cls(checkpoint, run_dir)

    def finished_report(self, datamodule: Any, max_epochs: int | None) -> dict[str, Any] | None:
        """Once the data is read: the same data, or a refusal; the killed process's stray
        temporaries removed; and the report of a run that has nothing left to train."""
        if self.checkpoint is None:
            return None
        _check_same_data(self.checkpoint, datamodule)
        remove_stray_temporaries(self.run_dir)  # what the killed process was writing when it died
        return _finished_report(self.checkpoint, max_epochs, self.run_dir)


def _checkpoint(ckpt_path: str | None, run_dir: Path, kind: Any = None) -> str | None:
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
    from fishbear.engine.checkpoint import load_checkpoint  # torch: only when there is a checkpoint

    # a text file, a truncated download, another program's file or another kind's: one line, before training
    load_checkpoint(path, kind)
    return str(path)


def _left_behind(run_dir: Path) -> str | None:
    """``last`` when this run's folder already holds ``checkpoints/last.ckpt``. A new run's folder
    is new (time-stamped, or a sweep number not used before), so it never finds one."""
    if not (run_dir / "checkpoints" / "last.ckpt").is_file():
        return None
    log.info("%s already holds checkpoints/last.ckpt: continuing that run", run_dir)
    return "last"


def _check_same_model(checkpoint: str, cfg: DictConfig, run_dir: Path) -> None:
    """The checkpoint must be of this run (same model settings; in its own folder, the same
    overrides), or resuming it would train another run's state."""
    from fishbear.engine.checkpoint import read_meta

    meta = read_meta(checkpoint)
    wanted = OmegaConf.to_container(cfg.model, resolve=True)
    assert isinstance(wanted, dict)
    if meta.model_cfg != wanted:
        differs = sorted(k for k in set(meta.model_cfg) | set(wanted) if meta.model_cfg.get(k) != wanted.get(k))
        raise CheckpointError(
            f"{checkpoint} holds a network built with other model settings ({', '.join(differs)}: "
            f"{ {k: meta.model_cfg.get(k) for k in differs} } there, { {k: wanted.get(k) for k in differs} } here): "
            "it cannot continue this run. Resume it with its own settings, or start a new run.")
    if Path(checkpoint).resolve().parent.parent == run_dir.resolve():
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
        check_same_run(run_dir, meta.provenance.run, overrides)


def _check_same_data(checkpoint: str, datamodule: Any) -> None:
    from fishbear.engine.checkpoint import read_meta

    meta = read_meta(checkpoint)
    if meta.classes != tuple(datamodule.classes):
        raise CheckpointError(f"{checkpoint} was trained on classes {list(meta.classes)}; data.root now has "
                              f"{datamodule.classes}. Resume on the same data, or start a new run.")
    check_same_data(meta.provenance.data_fingerprint, fingerprint(datamodule.catalog.splits, datamodule.root),
                    checkpoint)


def _finished_report(checkpoint: str, max_epochs: int | None, run_dir: Path) -> dict[str, Any] | None:
    """None when there is more to train (or the report was never written: then it is tested and
    reported now)."""
    from fishbear.engine.checkpoint import load_checkpoint

    completed = load_checkpoint(checkpoint).completed_epochs()
    report = run_dir / "report.json"
    if max_epochs is None or max_epochs < 0 or completed < max_epochs or not report.is_file():
        return None
    print(f"Run {run_dir} is finished: it has trained its {completed} epoch(s) (report: {run_dir / 'report.md'}). "
          f"To train on, resume with trainer.max_epochs larger than {completed}.", flush=True)
    return json.loads(report.read_text())


def resume_argv(argv: list[str]) -> list[str]:
    """``--resume RUN_DIR`` becomes the run's own overrides, its folder and ``ckpt_path=last``."""
    if len(argv) < 3 or argv[1] != "--resume":
        return argv
    run_dir = Path(argv[2])
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.is_file():
        raise ConfigError(f"{run_dir} is not a fishbear run folder (no .hydra/overrides.yaml)")
    old = [o for o in yaml.safe_load(overrides_file.read_text()) or []
           if not o.startswith(("hydra.run.dir=", "ckpt_path="))]
    targets = [o for o in old if "_target_" in o.split("=", 1)[0]]
    if targets:  # classes are chosen by config groups; a run folder must not name code to run
        raise ConfigError(f"{overrides_file} overrides a _target_ ({', '.join(targets)}); --resume applies only "
                          "fishbear's own config choices. Remove that line, or start a new run.")
    return [argv[0], *old, *argv[3:], f"hydra.run.dir={run_dir}", "ckpt_path=last"]
