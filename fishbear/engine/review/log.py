"""The decisions of a review, kept append-only, and their application to the dataset's folders.

``decisions.jsonl``: one JSON line per key press (``{"seq", "file", "action", "label", "sha256",
"time"}``, ``action`` keep, remove or relabel, ``sha256`` the file's bytes when the decision was
made; an undo is a line ``{"seq", "undo": <seq undone>}``), written and synced as it happens: a
closed tab or a killed server loses nothing, and the effective decision of a file is its last line
that was not undone. Sequence numbers are never reused (the next is one more than the largest, so a
line deleted by hand cannot make an undo take back another decision).

Every state file here is read as data: a line that is not one of fishbear's records is one error
naming the file, the line and the fix (only a last line a kill cut short is passed over), a
``file`` that is not a plain path inside the dataset is refused, and no state file is read or
appended through a link.

``apply`` moves files, never deletes them: a relabelled image into its new class folder, a
removed one under ``_removed/`` at the dataset's root (which no reader takes for a split), each
move recorded in ``applied.jsonl`` with the file's sha256. It moves a file only while its bytes are
the ones decided on (a new photo that took a reviewed name is not the one decided on) and holds a
lock on the dataset, so two applies do not move files under each other. It is idempotent (a move
already made is recognised by its target's bytes), and ``undo`` moves everything back, each file
only while it is the one moved, so the tree is restored byte for byte. The dataset root gets
``.fishbear-review.json``: what each review changed, kept apart by review (undoing one leaves the
others'), so the next run's report can say it beside its metric.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fishbear.core.containment import append_line, inside, is_plain_relative, read_records
from fishbear.core.errors import DataError
from fishbear.core.outputs import is_sha256, sha256_of
from fishbear.data.review_note import set_review_note

ACTIONS = ("keep", "remove", "relabel")
REMOVED = "_removed"
LOCK = ".fishbear-review.lock"
def _check_decision(entry: dict[str, Any]) -> None:
    if not isinstance(entry.get("seq"), int) or isinstance(entry.get("seq"), bool):
        raise ValueError("'seq' (the decision's number) is missing or not a whole number")
    if "undo" in entry:
        if not isinstance(entry["undo"], int) or isinstance(entry["undo"], bool):
            raise ValueError("'undo' is not the number of a decision")
        return
    if not is_plain_relative(entry.get("file")):
        raise ValueError(f"'file' {entry.get('file')!r} is not a path inside the dataset")
    if entry.get("action") not in ACTIONS:
        raise ValueError(f"'action' {entry.get('action')!r} is none of {', '.join(ACTIONS)}")
    if entry["action"] == "relabel" and (not isinstance(entry.get("label"), str) or not entry["label"]):
        raise ValueError("a relabel has no 'label'")
    if entry["action"] != "keep" and not is_sha256(entry.get("sha256")):
        raise ValueError("'sha256' (the file's bytes when decided on) is missing or not 64 hex digits")


class DecisionLog:
    """``decisions.jsonl`` of one review."""

    FIX = "Delete that line (its decision is lost), or press the decision again on the page."

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lines: list[dict[str, Any]] = read_records(self.path, "review decisions", "one of fishbear's decision lines",
                                                        _check_decision, self.FIX)
        numbers = [e["seq"] for e in self.lines]
        if len(set(numbers)) != len(numbers):
            twice = sorted({n for n in numbers if numbers.count(n) > 1})
            raise DataError(f"{self.path}: decision number(s) {twice[:5]} appear twice: an undo could take back the "
                            f"wrong one. {self.FIX}")

    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        following = max((e["seq"] for e in self.lines), default=-1) + 1
        entry = {"seq": following, **entry, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_line(self.path, json.dumps(entry), "review decisions", sync=True)
        self.lines.append(entry)
        return entry

    def decide(self, file: str, action: str, label: str | None, classes: list[str],
               sha256: str | None = None) -> dict[str, Any]:
        if action not in ACTIONS:
            raise DataError(f"action {action!r}: use {', '.join(ACTIONS)}.")
        if action == "relabel" and label not in classes:
            raise DataError(f"relabel to {label!r}: the classes are {', '.join(classes)}.")
        if action != "keep" and not is_sha256(sha256):
            raise DataError(f"{file}: a {action} needs the file's sha256 (the bytes decided on).")
        return self._append({"file": file, "action": action, "label": label if action == "relabel" else None,
                             **({"sha256": sha256} if sha256 else {})})

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


def _check_move(entry: dict[str, Any]) -> None:
    for name in ("source", "target"):
        if not is_plain_relative(entry.get(name)):
            raise ValueError(f"{name!r} {entry.get(name)!r} is not a path inside the dataset")
    if not is_sha256(entry.get("sha256")):
        raise ValueError("'sha256' is missing or not 64 hex digits")


APPLIED_FIX = ("It is the record undo needs: restore it from a copy, or put the files back by hand and delete the "
               "file.")


def _moves(applied_log: Path) -> list[dict[str, Any]]:
    return read_records(Path(applied_log), "applied moves", "one of fishbear's applied-move lines", _check_move,
                        APPLIED_FIX)


@contextmanager
def dataset_lock(root: Path) -> Iterator[None]:
    """Held while a review moves files in the dataset at ``root``: a second apply or undo (of this
    review or another one) is refused at once instead of moving files under the first."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        yield
        return
    path = Path(root) / LOCK
    if path.is_symlink():
        raise DataError(f"{path} is a link; remove it (fishbear keeps a plain lock file there).")
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"{root} is being changed by another fishbear review apply or undo right now; wait for it "
                            "to finish, then run this one again.") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def apply(root: Path, decisions: dict[str, dict[str, Any]], class_depth: int, folder_of: dict[str, str],
          applied_log: Path, review: str) -> dict[str, int]:
    """Make the decisions' moves (those not made yet); returns counts of what changed now and in all."""
    root = Path(root)
    with dataset_lock(root):
        done = {m["source"]: m for m in _moves(applied_log)}
        counts = {"relabelled": 0, "removed": 0, "already": 0, "missing": 0}
        planned: list[tuple[Path, Path, Move, str]] = []
        for file, decision in sorted(decisions.items()):  # every check before any file moves
            target = target_of(file, decision, class_depth, folder_of)
            if target is None:
                continue
            where = f"{applied_log.parent / 'decisions.jsonl'} (decision {decision['seq']})"
            source_path, target_path = inside(root, file, "the file", where), inside(root, target, "the target", where)
            earlier = done.get(file)
            if earlier and earlier["target"] == target and not source_path.exists() and target_path.is_file() \
                    and sha256_of(target_path) == earlier["sha256"]:
                counts["already"] += 1
                continue
            if not source_path.is_file() or source_path.is_symlink():
                counts["missing"] += 1
                continue
            digest = sha256_of(source_path)
            if digest != decision["sha256"]:
                raise DataError(f"{source_path} is not the file decided on in {where}: its bytes changed since (or "
                                "another file took its name). Nothing was moved. Review it again, or undo that "
                                "decision on the page, then apply.")
            if target_path.exists() or target_path.is_symlink():
                raise DataError(f"{target_path} exists: moving {source_path} there would replace it. Nothing was "
                                "moved. Rename one of them, then apply again.")
            planned.append((source_path, target_path, Move(file, target, digest), decision["action"]))
        for source_path, target_path, move, action in planned:
            target_path.parent.mkdir(parents=True, exist_ok=True)
            # recorded before the move: a kill loses nothing
            append_line(applied_log, json.dumps(move.__dict__), "applied moves", sync=True)
            source_path.replace(target_path)
            counts["removed" if action == "remove" else "relabelled"] += 1
        moves = _moves(applied_log)
        total = {"relabelled": sum(not m["target"].startswith(REMOVED + "/") for m in moves),
                 "removed": sum(m["target"].startswith(REMOVED + "/") for m in moves)}
        if moves:
            set_review_note(root, review, {"relabelled": total["relabelled"], "removed": total["removed"],
                                     "applied": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return {**counts, **{f"total_{k}": v for k, v in total.items()}}


def copy_in(root: Path, into: Path, dataset_root: Path, decisions: dict[str, dict[str, Any]], calls: dict[str, str],
            folder_of: dict[str, str], applied_log: Path, review: str) -> dict[str, int]:
    """Unlabelled pictures (under ``root``) labelled by their decisions, copied (never moved) into
    the class folders under ``into``: ``keep`` into the model's answer (``calls``), a relabel into
    its class, ``remove`` nowhere. Every check before the first copy; each copy recorded with its
    sha256 before it is written, written atomically, never over a file; idempotent."""
    from fishbear.core.atomic import atomic_write

    root, into = Path(root), Path(into)
    with dataset_lock(dataset_root):
        done = {m["source"]: m for m in _moves(applied_log)}
        counts = {"labelled": 0, "already": 0, "missing": 0}
        planned: list[tuple[Path, Path, Move]] = []
        for file, decision in sorted(decisions.items()):
            label = decision.get("label") if decision["action"] == "relabel" else \
                calls.get(file) if decision["action"] == "keep" else None
            if not label:
                continue
            where = f"{applied_log.parent / 'decisions.jsonl'} (decision {decision['seq']})"
            target = f"{folder_of.get(label, label)}/{Path(file).name}"
            source_path, target_path = inside(root, file, "the file", where), inside(into, target, "the target", where)
            earlier = done.get(file)
            if earlier and earlier["target"] == target and target_path.is_file() \
                    and sha256_of(target_path) == earlier["sha256"]:
                counts["already"] += 1
                continue
            if not source_path.is_file() or source_path.is_symlink():
                counts["missing"] += 1
                continue
            digest = sha256_of(source_path)
            if decision.get("sha256") and digest != decision["sha256"]:
                raise DataError(f"{source_path} is not the picture decided on in {where}: its bytes changed since. "
                                "Nothing was copied. Review it again, then apply.")
            if target_path.exists() or target_path.is_symlink():
                raise DataError(f"{target_path} exists: copying {source_path} there would replace it. Nothing was "
                                "copied. Rename one of them, then apply again.")
            planned.append((source_path, target_path, Move(file, target, digest)))
        for source_path, target_path, move in planned:
            target_path.parent.mkdir(parents=True, exist_ok=True)
            append_line(applied_log, json.dumps(move.__dict__), "applied copies", sync=True)
            data = source_path.read_bytes()
            atomic_write(target_path, lambda handle, data=data: handle.write(data))
            counts["labelled"] += 1
        total = len(_moves(applied_log))
        if total:
            set_review_note(dataset_root, review, {"added": total, "applied": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return {**counts, "total_labelled": total}


def undo_copies(into: Path, dataset_root: Path, applied_log: Path, review: str) -> int:
    """Take out every copy :func:`copy_in` made, each only while it is the picture copied (its
    sha256); the pictures it was copied from were never touched. Returns how many."""
    into = Path(into)
    with dataset_lock(dataset_root):
        moves = _moves(applied_log)
        for move in moves:  # every check first: all or nothing
            target = inside(into, move["target"], "the target", str(applied_log))
            if target.is_file() and sha256_of(target) != move["sha256"]:
                raise DataError(f"{target} is not the picture this review copied there (its bytes changed since): "
                                "nothing was taken out. Put it back as it was, or remove it by hand.")
        removed = 0
        for move in reversed(moves):
            target = into / move["target"]
            if target.is_file() and not target.is_symlink():
                target.unlink()
                removed += 1
            parent = target.parent
            while parent != into and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        if applied_log.is_file():
            applied_log.replace(applied_log.with_name("applied.undone.jsonl"))
        set_review_note(dataset_root, review, None)
    return removed


def undo(root: Path, applied_log: Path, review: str) -> int:
    """Move every applied file back (last first), each only while it is the file that was moved
    (its sha256); returns how many. The folders apply made and left empty are removed; the log is
    kept as ``applied.undone.jsonl``; only this review's dataset note is taken away."""
    root = Path(root)
    with dataset_lock(root):
        moves = _moves(applied_log)
        for move in moves:  # every check before any file moves: an undo does all of it or nothing
            source, target = inside(root, move["source"], "the file", str(applied_log)), \
                inside(root, move["target"], "the target", str(applied_log))
            if target.is_file() and not source.exists() and sha256_of(target) != move["sha256"]:
                raise DataError(f"{target} is not the file this review moved there (its bytes changed since): nothing "
                                f"was moved back. Put it back as it was, or move it to {source} by hand.")
        restored = 0
        for move in reversed(moves):
            source, target = root / move["source"], root / move["target"]
            if target.is_file() and not target.is_symlink() and not source.exists():
                source.parent.mkdir(parents=True, exist_ok=True)
                target.replace(source)
                restored += 1
            parent = target.parent
            while parent != root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        if applied_log.is_file():
            applied_log.replace(applied_log.with_name("applied.undone.jsonl"))
        set_review_note(root, review, None)
    return restored
