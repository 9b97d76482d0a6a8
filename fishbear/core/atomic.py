"""Atomic file writes: a run killed mid-write leaves the old file or the new one, never half."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def umask_mode(base: int = 0o666) -> int:
    """``base`` less the process's umask: the mode any other program's new file would get."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def _stage(path: Path, write: Callable[[IO[bytes]], None]) -> str:
    """Write a temporary file beside ``path`` with ``write``, synced, with the mode the umask gives
    new files (``mkstemp`` alone makes it 0600, which colleagues sharing a run folder cannot
    read); returns its name. A failure removes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), umask_mode())
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_together(writes: dict[Path, Callable[[IO[bytes]], None]]) -> list[Path]:
    """Files that belong together (``report.json`` and ``report.md``): every temporary file is
    written and synced first, then all are renamed into place one after the other, so a kill
    leaves the old set or the new one, not one new file beside an old one. A full disk or a
    forbidden folder is one :class:`FishbearError` naming the file (:func:`_write_error`)."""
    staged: list[tuple[str, Path]] = []
    path = Path()
    try:
        for path, write in writes.items():
            path = Path(path)
            staged.append((_stage(path, write), path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except OSError as err:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, err) from None
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
    return [path for _, path in staged]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, fsync it, then rename it over ``path``:
    a run killed mid-write leaves the old file or the new one, never half."""
    return atomic_write_together({Path(path): write})[0]


def text_writer(text: str) -> Callable[[IO[bytes]], None]:
    """A writer of ``text`` as UTF-8; non-UTF-8 file names in it are escaped (:func:`printable`)
    rather than losing the whole file to a UnicodeEncodeError at the end of a run."""
    return lambda handle: handle.write(printable(text).encode("utf-8"))


def _write_error(path: Path, err: OSError) -> Exception:
    """A full disk, a quota, a read-only or forbidden folder: the user's to fix, so one line
    (exit status 2) naming the file, not a traceback from inside the trainer."""
    import errno

    from fishbear.core.errors import FishbearError

    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
        return FishbearError(f"Could not write {path}: {err.strerror}. Free some space or point the run elsewhere "
                             "(FISHBEAR_OUTPUTS, hydra.run.dir=), then resume it with --resume.")
    return err


def printable(text: str) -> str:
    """``text`` with the bytes of a file name that is not UTF-8 (Python holds them as surrogates)
    shown as ``\\xe9``: valid UTF-8 that still names the file, where encoding it would raise."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, text_writer(text))


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def remove_stray_temporaries(folder: Path) -> int:
    """Delete the ``.<name>.*.tmp`` files a killed process left under ``folder`` (a run folder is
    one run's own: no other writer can be using them); returns how many."""
    stray = [path for path in Path(folder).rglob(".*.tmp") if path.is_file()]
    for path in stray:
        path.unlink(missing_ok=True)
    return len(stray)


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` through :func:`atomic_write`: a rewritten checkpoint is never half there."""
    import torch

    return atomic_write(path, lambda handle: torch.save(obj, handle))


@contextmanager
def exclusive(lock_file: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if need be) for the ``with`` block: runs
    started side by side (``-m`` with the joblib or submitit launcher, DDP processes) that find the
    same dataset missing make it once, one after the other, instead of one deleting the copy another
    is reading. POSIX ``flock``; elsewhere no lock."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        yield
        return
    path = Path(lock_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
