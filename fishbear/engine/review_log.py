"""The decisions of a review, kept append-only, and their application to the dataset's folders.

``decisions.jsonl``: one JSON line per key press (``{"seq", "file", "action", "label", "time"}``,
``action`` keep, remove or relabel; an undo is a line ``{"seq", "undo": <seq undone>}``), written
and flushed as it happens: a closed tab or a killed server loses nothing, and the effective
decision of a file is its last line that was not undone.

``apply`` moves files, never deletes them: a relabelled image into its new class folder, a
removed one under ``_removed/`` at the dataset's root (which no reader takes for a split), each
move recorded in ``applied.jsonl`` with the file's sha256. It is idempotent (a move already made
is recognised by its target's bytes), and ``undo`` moves everything back, so the tree is restored
byte for byte. The dataset root gets ``.fishbear-review.json``: what was changed, from which review,
so the next run's report can say it beside its metric.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fishbear.core.atomic import atomic_write_text
from fishbear.core.errors import DataError
from fishbear.core.outputs import sha256_of

ACTIONS = ("keep", "remove", "relabel")
REMOVED = "_removed"
DATASET_NOTE = ".fishbear-review.json"


class DecisionLog:
    """``decisions.jsonl`` of one review."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lines: list[dict[str, Any]] = []
        if self.path.is_file():
            for text in self.path.read_text(errors="replace").splitlines():
                try:
                    self.lines.append(json.loads(text))
                except ValueError:
                    continue  # a line cut by a kill: the ones before it stand

    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry = {"seq": len(self.lines), **entry, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.lines.append(entry)
        return entry

    def decide(self, file: str, action: str, label: str | None, classes: list[str]) -> dict[str, Any]:
        if action not in ACTIONS:
            raise DataError(f"action {action!r}: use {', '.join(ACTIONS)}.")
        if action == "relabel" and label not in classes:
            raise DataError(f"relabel to {label!r}: the classes are {', '.join(classes)}.")
        return self._append({"file": file, "action": action, "label": label if action == "relabel" else None})

    def undone(self) -> set[int]:
        return {int(e["undo"]) for e in self.lines if "undo" in e}

    def undo(self) -> dict[str, Any] | None:
        """Undo the last decision not undone yet; returns it (None: nothing to undo)."""
        gone = self.undone()
        for entry in reversed(self.lines):
            if "undo" not in entry and entry["seq"] not in gone:
                self._append({"undo": entry["seq"]})
                return entry
        return None

    def effective(self) -> dict[str, dict[str, Any]]:
        """Each file's standing decision."""
        gone = self.undone()
        out: dict[str, dict[str, Any]] = {}
        for entry in self.lines:
            if "undo" in entry or entry["seq"] in gone:
                continue
            out[entry["file"]] = entry
        return out


@dataclass
class Move:
    source: str
    target: str
    sha256: str


def target_of(file: str, decision: dict[str, Any], class_depth: int, folder_of: dict[str, str]) -> str | None:
    """Where a decision puts ``file`` (relative to the root); None: it stays."""
    parts = file.split("/")
    if decision["action"] == "remove":
        return "/".join([REMOVED, *parts])
    if decision["action"] == "relabel":
        if len(parts) <= class_depth + 1:
            raise DataError(f"{file} sits in no class folder; review moves images between class folders.")
        parts[class_depth] = folder_of.get(decision["label"], decision["label"])
        moved = "/".join(parts)
        return None if moved == file else moved
    return None


def _inside(root: Path, relative: str) -> Path:
    path = (root / relative)
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise DataError(f"{relative} is not a path inside {root}.")
    return path


def apply(root: Path, decisions: dict[str, dict[str, Any]], class_depth: int, folder_of: dict[str, str],
          applied_log: Path, review: str) -> dict[str, int]:
    """Make the decisions' moves (those not made yet); returns counts of what changed now and in all."""
    root = Path(root)
    done = {m["source"]: m for m in _read(applied_log)}
    counts = {"relabelled": 0, "removed": 0, "already": 0, "missing": 0}
    for file, decision in sorted(decisions.items()):
        target = target_of(file, decision, class_depth, folder_of)
        if target is None:
            continue
        source_path, target_path = _inside(root, file), _inside(root, target)
        earlier = done.get(file)
        if earlier and earlier["target"] == target and not source_path.exists() and target_path.is_file() \
                and sha256_of(target_path) == earlier["sha256"]:
            counts["already"] += 1
            continue
        if not source_path.is_file():
            counts["missing"] += 1
            continue
        if target_path.exists():
            raise DataError(f"{target_path} exists: moving {source_path} there would replace it. Rename one of them, "
                            "then apply again.")
        move = Move(file, target, sha256_of(source_path))
        target_path.parent.mkdir(parents=True, exist_ok=True)
        with open(applied_log, "a", encoding="utf-8") as handle:  # recorded before the move: a kill loses nothing
            handle.write(json.dumps(move.__dict__) + "\n")
        os.replace(source_path, target_path)
        counts["removed" if decision["action"] == "remove" else "relabelled"] += 1
    moves = _read(applied_log)
    total = {"relabelled": sum(not m["target"].startswith(REMOVED + "/") for m in moves),
             "removed": sum(m["target"].startswith(REMOVED + "/") for m in moves)}
    note = {"review": review, "relabelled": total["relabelled"], "removed": total["removed"],
            "applied": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if moves:
        atomic_write_text(root / DATASET_NOTE, json.dumps(note, indent=1) + "\n")
    return {**counts, **{f"total_{k}": v for k, v in total.items()}}


def undo(root: Path, applied_log: Path) -> int:
    """Move every applied file back (last first); returns how many. The folders apply made and
    left empty are removed; the log is kept as ``applied.undone.jsonl``."""
    root = Path(root)
    moves = _read(applied_log)
    restored = 0
    for move in reversed(moves):
        source, target = _inside(root, move["source"]), _inside(root, move["target"])
        if target.is_file() and not source.exists():
            source.parent.mkdir(parents=True, exist_ok=True)
            os.replace(target, source)
            restored += 1
        parent = target.parent
        while parent != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    if applied_log.is_file():
        os.replace(applied_log, applied_log.with_name("applied.undone.jsonl"))
    (root / DATASET_NOTE).unlink(missing_ok=True)
    return restored


def _read(path: Path) -> list[dict[str, Any]]:
    if not Path(path).is_file():
        return []
    out = []
    for text in Path(path).read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(text))
        except ValueError:
            continue
    return out


def dataset_note(root: Path) -> dict[str, Any] | None:
    """What a review changed in the dataset at ``root`` (for the next run's report), or None."""
    path = Path(root) / DATASET_NOTE
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None
