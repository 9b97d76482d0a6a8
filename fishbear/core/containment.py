"""One containment rule for every path fishbear builds from data, and state files opened as files.

A path that comes from data (a class name in a URL list, a ``file`` cell of a manifest, a decision
line, export metadata) is never trusted to stay where it belongs: :func:`inside` joins it to the
folder it belongs to and refuses it, in one line naming where it came from, unless every part of it
is a plain name and the result, links followed, is still inside that folder. :func:`plain_name`
does the same for a name that becomes one folder or file name (a class).

State and journal files (``.fishbear-written.jsonl``, ``.fetch/downloads.jsonl``, a review's
``decisions.jsonl`` ...) are opened with ``O_NOFOLLOW`` (:func:`append_line`, :func:`read_state`):
a link planted in a state file's place is refused, never appended through to a file elsewhere,
and never read as if it were fishbear's own record.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from fishbear.core.errors import DataError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def plain_name(name: str, what: str, source: str) -> str:
    """``name`` when it can be one folder or file name: not empty, not ``.`` or ``..``, no ``/``
    or ``\\``, no control character, no leading dot (a hidden file) and no space at either end."""
    problem = None
    if not name or name in (".", ".."):
        problem = "is empty or a relative folder"
    elif "/" in name or "\\" in name:
        problem = "holds a path separator"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "holds a control character"
    elif name.startswith("."):
        problem = "starts with a dot (a hidden name)"
    elif name != name.strip():
        problem = "starts or ends with a space"
    if problem:
        raise DataError(f"{source}: {what} {name!r} {problem}, and it becomes a folder name: it must be a plain "
                        "name (letters, digits, '_', '-', spaces inside). Rename it there.")
    return name


def inside(root: Path, relative: str, what: str, source: str) -> Path:
    """``root / relative`` when ``relative`` is a relative path of plain parts (no ``..``, not
    absolute, no backslash) whose target, links followed, lies inside ``root``; else one
    :class:`DataError` naming ``source`` (the file and line it came from)."""
    text = str(relative)
    if not is_plain_relative(text):
        raise DataError(f"{source}: {what} {text!r} is not a path inside {root}; fishbear reads and writes only "
                        "inside that folder. Correct or remove that entry.")
    path = Path(root, *PurePosixPath(text).parts)
    if not is_within(path, root):
        raise DataError(f"{source}: {what} {text!r} leads out of {root} through a link; fishbear reads and writes "
                        "only inside that folder. Remove the link, or correct that entry.")
    return path


def is_plain_relative(value: object) -> bool:
    """Whether ``value`` is a ``/``-separated relative path of plain parts: not empty, not
    absolute, no ``..`` or ``.``, no backslash, NUL or drive (``C:``)."""
    if not isinstance(value, str) or not value or value.startswith("/") or "\\" in value or "\x00" in value:
        return False
    parts = PurePosixPath(value).parts
    return bool(parts) and ":" not in parts[0] and not any(p in ("..", ".") for p in parts)


def is_within(path: Path, root: Path) -> bool:
    """Whether ``path``, links resolved (as far as they exist), lies inside ``root`` (resolved too)."""
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    return real == real_root or real_root in real.parents


def refuse_link(path: Path, what: str) -> None:
    """A state or output file that is a symbolic link: one line, nothing read or written through it."""
    if Path(path).is_symlink():
        raise DataError(f"{path} is a symbolic link where fishbear keeps its {what}: nothing was read or written "
                        "through it. Remove the link (fishbear writes a plain file there).")


def append_line(path: Path, line: str, what: str, sync: bool = False) -> None:
    """Append ``line`` (and a newline) to the state file ``path``, never through a link."""
    path = Path(path)
    refuse_link(path, what)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o666)
    except OSError as err:
        if err.errno == errno.ELOOP:
            refuse_link(path, what)
        raise
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(line.rstrip("\n") + "\n")
        handle.flush()
        if sync:
            os.fsync(handle.fileno())


class StateAppender:
    """An open state file for many appends (a journal written line by line), opened without
    following links; ``write`` flushes each line so the next process sees it."""

    def __init__(self, path: Path, what: str) -> None:
        refuse_link(path, what)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o666)
        self.handle = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, line: str) -> None:
        self.handle.write(line.rstrip("\n") + "\n")
        self.handle.flush()

    def close(self, sync: bool = True) -> None:
        if sync:
            os.fsync(self.handle.fileno())
        self.handle.close()


def read_state(path: Path, what: str) -> str | None:
    """The text of the state file ``path`` (None when there is none), never read through a link."""
    path = Path(path)
    refuse_link(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            refuse_link(path, what)
        if err.errno == errno.EISDIR:
            raise DataError(f"{path} is a folder where fishbear keeps its {what}; remove or rename it.") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        return handle.read().decode("utf-8", errors="replace")


def state_lines(path: Path, what: str) -> list[tuple[int, str, bool]]:
    """``(line number, text, complete)`` of each non-blank line of an append-only state file;
    ``complete`` is False only for a last line without its newline (one a kill cut short)."""
    text = read_state(path, what)
    if not text:
        return []
    lines = text.split("\n")
    out = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            out.append((number, line, number < len(lines)))
    return out


def read_records(path: Path, store: str, record: str, check: Callable[[dict[str, Any]], None],
                 fix: str) -> list[dict[str, Any]]:
    """The JSON-object lines of the state file ``path`` (``store``: what it keeps, for the link
    refusal), each checked by ``check``, which raises ``ValueError`` saying what is wrong. A
    malformed line is one error naming the file, the line, that it is not ``record``, and
    ``fix``; only a last line a kill cut short is passed over."""
    import json

    out = []
    for number, text, complete in state_lines(path, store):
        try:
            entry = json.loads(text)
            if not isinstance(entry, dict):
                raise ValueError("a line must be a JSON object")
            check(entry)
        except (ValueError, TypeError) as err:
            if not complete:
                continue  # a line cut by a kill: the ones before it stand
            raise DataError(f"{path}, line {number}: not {record} ({err}). {fix}") from None
        out.append(entry)
    return out
