"""A run folder is one run: entered again, it continues that run or refuses.

Entering a folder again is how runs continue (``--resume``, a SLURM job requeued, a search trial
run again, torchrun's fixed ``hydra.run.dir``), so it must never quietly become another run:

- a command whose overrides differ from the folder's own (beyond :data:`RESUMABLE_KEYS`, which a
  resume may change) is refused with both sets shown, before Hydra rewrites ``.hydra/`` (single
  runs: :func:`refuse_other_overrides`), or, inside a sweep, when the job finds the folder's
  checkpoint (:func:`check_same_run`), which then puts the folder's ``.hydra`` files back;
- a second process in a folder in use is refused (:func:`hold`, an ``flock`` held for the run);
- a resume checks the data it was started on: the checkpoint carries a fingerprint of every
  split's files, and a changed split is refused (it would resume a schedule sized for the old one).

And a run folder is fishbear's or nobody's (the output policy's rule, applied to run folders): a
command given a ``hydra.run.dir`` (or ``hydra.sweep.dir``) that holds files fishbear did not write
is refused before Hydra writes there (:func:`refuse_foreign_folder`), and again in the job
(:func:`check_owner`), unless the folder is a run of the same command being entered again. A run
folder says whose it is in ``.fishbear-run.json`` (written when the run starts, :func:`mark`);
folders of runs made before that file existed are recognised by their ``.hydra/overrides.yaml``
and checkpoints. ``train`` never writes into an ``evaluate`` folder, nor the other way round.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import yaml

from fishbear.core.errors import CheckpointError, ConfigError

# what a resume may change: how long to train, where to continue from, how to load and show
RESUMABLE_KEYS = ("trainer.max_epochs", "trainer.max_steps", "ckpt_path", "data.num_workers",
                  "trainer.enable_progress_bar")
HYDRA_FILES = ("config.yaml", "overrides.yaml")
LOCK_FILE = ".fishbear.lock"
MARKER = ".fishbear-run.json"
# what a sweep folder holds: Hydra's record, the summaries, an Optuna search's study and trials
SWEEP_FILES = frozenset({"multirun.yaml", "summary.csv", "summary.md", "optuna.db", "trials.csv", "trials.md"})


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def comparable(overrides: list[str]) -> list[str]:
    """The overrides that make a run what it is: without the keys a resume may change."""
    return sorted(o for o in overrides if _key(o) not in RESUMABLE_KEYS and not _key(o).startswith("hydra"))


def _difference(saved: list[str], given: list[str]) -> str:
    only_saved = sorted(set(saved) - set(given))
    only_given = sorted(set(given) - set(saved))
    return (f"the folder's run has {' '.join(only_saved) or '(nothing else)'}; this command has "
            f"{' '.join(only_given) or '(nothing else)'}")


def _refusal(run_dir: Path, saved: list[str], given: list[str]) -> ConfigError:
    return ConfigError(
        f"{run_dir} holds another run ({_difference(saved, given)}). A run folder is one run: continue it with "
        f"python -m fishbear.train --resume {run_dir} (changing only {', '.join(RESUMABLE_KEYS)}), or start this "
        "run in a new folder (leave out hydra.run.dir, or give another).")


def _rank_zero() -> bool:
    return all(os.environ.get(name, "0") == "0" for name in ("LOCAL_RANK", "RANK", "NODE_RANK"))


def refuse_other_overrides(argv: list[str]) -> None:
    """Before Hydra starts (it rewrites ``.hydra/overrides.yaml`` first thing): a single run given
    ``hydra.run.dir`` of a folder that holds a run with other overrides is refused."""
    if "-m" in argv or "--multirun" in argv or not _rank_zero():
        return
    given_dir = [a.split("=", 1)[1].strip('"') for a in argv if a.startswith("hydra.run.dir=")]
    if not given_dir:
        return
    run_dir = Path(given_dir[-1])
    saved_file = run_dir / ".hydra" / "overrides.yaml"
    if not saved_file.is_file():
        return
    try:
        saved = [str(o) for o in yaml.safe_load(saved_file.read_text()) or []]
    except yaml.YAMLError:
        return
    given = [a for a in argv if not a.startswith("-") and "=" in a or a.startswith("~")]
    if comparable(saved) != comparable(given):
        raise _refusal(run_dir, comparable(saved), comparable(given))


def record(run_dir: Path, overrides: list[str], config: str = "") -> dict[str, Any]:
    """What a checkpoint keeps of the run it belongs to: the overrides that make it what it is,
    the texts of its ``.hydra`` files (to put back if another run is refused in the folder), and
    the run's composed config without Hydra's own section (``config``: what ``export`` rebuilds
    the run's test split from, wherever the run folder has gone)."""
    hydra_dir = Path(run_dir) / ".hydra"
    files = {name: (hydra_dir / name).read_text() for name in HYDRA_FILES if (hydra_dir / name).is_file()}
    return {"overrides": comparable(list(overrides)), "hydra_files": files, "config": config}


def check_same_run(run_dir: Path, saved: dict[str, Any] | None, overrides: list[str]) -> None:
    """A job entering a folder whose checkpoint belongs to a run with other overrides (a grid
    sweep run again into the same ``hydra.sweep.dir`` with another grid): refused, and the
    folder's ``.hydra`` files, which Hydra has just rewritten, put back."""
    if not saved or "overrides" not in saved:
        return
    given = comparable(list(overrides))
    if list(saved["overrides"]) == given:
        return
    from fishbear.core.atomic import atomic_write_text

    for name, text in (saved.get("hydra_files") or {}).items():
        if name in HYDRA_FILES:
            atomic_write_text(Path(run_dir) / ".hydra" / name, text)
    raise _refusal(Path(run_dir), list(saved["overrides"]), given)


class FolderLock:
    """An exclusive ``flock`` on ``<run>/.fishbear.lock`` for as long as the run lives: a second
    process started in the same folder (two ``--resume`` at once) is refused instead of training
    into it too. Only the launching process takes it (DDP's other ranks share the run)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._handle: Any = None

    def acquire(self) -> FolderLock:
        if not _rank_zero():
            return self
        try:
            import fcntl
        except ImportError:  # Windows: no flock
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ConfigError(f"{self.path.parent} is in use by {holder}: a run folder holds one run at a time. Wait "
                              "for it to end (or stop it), then resume; or start a new run in another folder.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {os.uname().nodename}\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the lock
            self._handle = None


def fingerprint(splits: dict[str, list[Any]], root: Path) -> dict[str, dict[str, Any]]:
    """Per split: how many images and a sha256 of their paths relative to the data root (the
    split's membership, which a resumed schedule and its validation depend on)."""
    out = {}
    base = Path(root).absolute()
    for split, samples in splits.items():
        names = []
        for sample in samples:
            path = Path(sample.image).absolute()
            try:
                names.append(path.relative_to(base).as_posix())
            except ValueError:
                names.append(path.as_posix())
        digest = hashlib.sha256("\n".join(sorted(names)).encode("utf-8", "surrogateescape")).hexdigest()
        out[split] = {"images": len(names), "sha256": digest}
    return out


def check_same_data(saved: dict[str, Any] | None, now: dict[str, Any], ckpt: str | Path) -> None:
    """A resume on data whose splits changed since the run started is refused, naming the splits."""
    if not saved:
        return
    changed = [f"{split}: {saved.get(split, {}).get('images', 0)} -> {now.get(split, {}).get('images', 0)} images"
               + ("" if saved.get(split, {}).get("images") != now.get(split, {}).get("images") else " (other files)")
               for split in sorted(set(saved) | set(now)) if saved.get(split) != now.get(split)]
    if changed:
        raise CheckpointError(
            f"{ckpt} was trained on other data than data.root holds now ({'; '.join(changed)}): resuming would "
            "continue a schedule and a validation set made for the old split. Put the data back as it was, or start "
            "a new run on the new data.")


def _hydra_own(command: str) -> set[str]:
    """What Hydra writes into a job's folder before the job runs (its config and its log)."""
    return {".hydra", f"{command}.log", LOCK_FILE}


def _legacy_run(run_dir: Path) -> bool:
    """A fishbear run folder of before the marker: Hydra's overrides and fishbear's checkpoints."""
    checkpoints = run_dir / "checkpoints"
    return (run_dir / ".hydra" / "overrides.yaml").is_file() and checkpoints.is_dir() \
        and any(checkpoints.glob("*.ckpt")) and all(p.suffix == ".ckpt" for p in checkpoints.iterdir())


def owner_problem(run_dir: Path, command: str) -> str | None:
    """Why ``command`` may not write into ``run_dir``, or None when it may (the folder is new or
    empty, holds only Hydra's start of this job, or is a run of the same command)."""
    import json

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    entries = {p.name for p in run_dir.iterdir()}
    marker = run_dir / MARKER
    if marker.is_file() and not marker.is_symlink():
        try:
            owner = json.loads(marker.read_text()).get("command")
        except (ValueError, AttributeError, OSError):
            owner = None
        if owner == command:
            return None
        return (f"{run_dir} is the folder of a fishbear {owner or 'run of another kind'}; {command} writes a report of "
                "its own and would replace that one's. Give another hydra.run.dir (or leave it out).")
    if entries <= _hydra_own(command) or (command == "train" and _legacy_run(run_dir)):
        return None
    foreign = sorted(entries - _hydra_own(command))
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    return (f"{run_dir} holds files fishbear did not write ({shown}): a run folder is fishbear's or nobody's, and "
            f"{command} would replace its report and checkpoints. Give a new or empty hydra.run.dir (or leave it out).")


def check_owner(run_dir: Path, command: str) -> None:
    """In the job: the run folder must be fishbear's (:func:`owner_problem`); then it is marked."""
    problem = owner_problem(run_dir, command)
    if problem:
        raise ConfigError(problem)
    mark(run_dir, command)


def mark(run_dir: Path, command: str) -> None:
    """``.fishbear-run.json``: this folder is a fishbear ``command``'s run (the rank-zero process)."""
    if not _rank_zero():
        return
    path = Path(run_dir) / MARKER
    if path.is_file() and not path.is_symlink():
        return
    import json
    import time

    from fishbear.core.atomic import atomic_write_text

    atomic_write_text(path, json.dumps({"command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")


def refuse_foreign_folder(argv: list[str], command: str) -> None:
    """Before Hydra writes anything: a given ``hydra.run.dir`` that is not fishbear's, or a given
    ``hydra.sweep.dir`` that holds files but is no sweep folder, is refused."""
    if not _rank_zero():
        return
    multirun = "-m" in argv or "--multirun" in argv
    key = "hydra.sweep.dir=" if multirun else "hydra.run.dir="
    given = [a.split("=", 1)[1].strip('"') for a in argv if a.startswith(key)]
    if not given:
        return
    folder = Path(given[-1])
    if not multirun:
        problem = owner_problem(folder, command)
        if problem:
            raise ConfigError(problem)
        return
    entries = list(folder.iterdir()) if folder.is_dir() else []
    for leftover in [p for p in entries if _half_written_sweep_file(p)]:  # a search killed mid-write
        leftover.unlink()
        entries.remove(leftover)
    foreign = sorted(p.name for p in entries if p.name not in SWEEP_FILES and not (p.is_dir() and p.name.isdigit()))
    if foreign:
        shown = ", ".join(foreign[:5])
        raise ConfigError(f"{folder} holds files fishbear did not write ({shown}) and is no sweep folder: a sweep "
                          "writes its runs and summaries there. Give a new or empty hydra.sweep.dir (or leave it out).")


def _half_written_sweep_file(path: Path) -> bool:
    """A temporary file :mod:`fishbear.core.atomic` was writing for a sweep file (``.trials.csv.x1y2.tmp``)
    when its process was killed: fishbear's own, never renamed into place, safe to remove."""
    return (path.is_file() and not path.is_symlink() and path.name.endswith(".tmp")
            and any(path.name.startswith(f".{name}.") for name in SWEEP_FILES))


def check_one_folder_under_torchrun() -> None:
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
