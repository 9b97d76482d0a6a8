"""The one output policy of every command that writes next to the user's data (``predict``,
``frames``, ``convert``): a file fishbear did not write is never replaced.

How fishbear knows a file is its own: each folder it writes into keeps a journal,
``.fishbear-written.jsonl``, one line per file written (its name and the sha256 of the bytes
written). A file is fishbear's own when its bytes still hash to what the journal says was written
there: a ``predicted_boxes/x.xml`` the user has since corrected in LabelImg is the user's, not
fishbear's, and is kept. Re-running a command into its own earlier output replaces those files and
says so; any other existing file is a clash, one :class:`OutputClash` naming it and the way out
(another output folder, or ``overwrite=true``).

The journal line is appended before the file is renamed into place, so a kill between the two
leaves either the old file (still listed under its earlier hash) or the new one: never a file of
fishbear's that the next run would take for the user's.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from fishbear.core.atomic import atomic_write
from fishbear.core.containment import StateAppender, is_within, read_state
from fishbear.core.errors import DataError

JOURNAL = ".fishbear-written.jsonl"


class OutputClash(DataError):
    """An output path that holds a file fishbear did not write, or is of the wrong type."""


def is_sha256(value: object) -> bool:
    """Whether ``value`` reads as a sha256 digest (64 lowercase hex digits), not a path or anything else."""
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


_HEX = frozenset("0123456789abcdef")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class OutputFiles:
    """The files one command writes. ``overwrite``: replace any file (the user said so);
    ``way_out``: what the clash message offers besides ``overwrite=true`` (``another out=``)."""

    def __init__(self, overwrite: bool = False, way_out: str = "another output folder") -> None:
        self.overwrite = bool(overwrite)
        self.way_out = way_out
        self.replaced = 0   # files of fishbear's own earlier output written again
        self._journals: dict[Path, dict[str, set[str]]] = {}
        self._handles: dict[Path, StateAppender] = {}
        self._roots: list[Path] = []  # folders whose files must stay inside them (links followed)

    # -- what is fishbear's --------------------------------------------------------------------
    def _journal(self, folder: Path) -> dict[str, set[str]]:
        folder = folder.absolute()
        if folder not in self._journals:
            written: dict[str, set[str]] = {}
            text = read_state(folder / JOURNAL, "journal of the files it wrote") if folder.is_dir() else None
            if text:
                for line in text.splitlines():
                    try:
                        entry = json.loads(line)
                        written.setdefault(str(entry["file"]), set()).add(str(entry["sha256"]))
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut by a kill: the entries before it still count
            self._journals[folder] = written
        return self._journals[folder]

    def is_ours(self, path: Path) -> bool:
        """Whether ``path`` holds exactly the bytes fishbear last (or once) wrote there."""
        path = Path(path)
        recorded = self._journal(path.parent).get(path.name)
        return bool(recorded) and path.is_file() and sha256_of(path) in recorded

    def check(self, path: Path, data: bytes | None = None) -> None:
        """Refuse ``path`` when it is a folder, or a file that is neither fishbear's own nor
        (given ``data``) already identical to what would be written."""
        path = Path(path)
        if path.is_dir():
            raise OutputClash(f"{path} is a folder; the output here is a file. Give {self.way_out}.")
        if not (path.exists() or path.is_symlink()) or self.overwrite:
            return
        if path.is_symlink():
            raise OutputClash(f"{path} is a link fishbear did not make; nothing was written over it. Give "
                              f"{self.way_out}, or remove the link.")
        if data is not None and path.stat().st_size == len(data) and sha256_of(path) == hashlib.sha256(data).hexdigest():
            return
        if not self.is_ours(path):
            raise OutputClash(f"{path} exists and was not written by fishbear (or was changed since): it is left as "
                              f"it is. Give {self.way_out}, or overwrite=true to replace it.")

    def check_folder(self, folder: Path, names: Callable[[Path], bool] = lambda p: True) -> None:
        """Before any work: every existing file under ``folder`` that the command might write
        (``names``) must be fishbear's own, so a clash stops the command before it starts."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise OutputClash(f"{folder} is a file; the output here is a folder. Give {self.way_out}.")
        self.keep_inside(folder)
        if self.overwrite or not folder.is_dir():
            return
        for path in sorted(folder.rglob("*")):
            if path.name != JOURNAL and (path.is_file() or path.is_symlink()) and names(path):
                self.check(path)

    def keep_inside(self, folder: Path) -> None:
        """Files written under ``folder`` must stay there: a sub-folder that is a link leading out
        of it (planted, or left by another program) is refused instead of written through."""
        self._roots.append(Path(folder).absolute())

    def _contained(self, path: Path) -> None:
        absolute = path.absolute()
        for root in self._roots:
            if root in absolute.parents and not is_within(absolute.parent, root):
                raise OutputClash(f"{path.parent} leads out of {root} through a link: nothing was written there. "
                                  f"Remove the link, or give {self.way_out}.")

    # -- writing -------------------------------------------------------------------------------
    def write_bytes(self, path: Path, data: bytes) -> Path:
        """Write ``data`` to ``path`` atomically under the policy, recording it as fishbear's."""
        path = Path(path)
        self._contained(path)
        self.check(path, data)
        digest = hashlib.sha256(data).hexdigest()
        if path.is_file() and self.is_ours(path):
            self.replaced += 1
        if path.is_file() and not path.is_symlink() and path.stat().st_size == len(data) and sha256_of(path) == digest:
            self._record(path, digest)  # already there, byte for byte: left as it is (its time too)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._record(path, digest)
        return atomic_write(path, lambda handle: handle.write(data))

    def write_text(self, path: Path, text: str) -> Path:
        from fishbear.core.atomic import printable

        return self.write_bytes(path, printable(text).encode("utf-8"))

    def place_file(self, source: Path, target: Path, link: bool = False) -> Path:
        """A copy (or hard link, where the file system allows) of the user's ``source`` at
        ``target``, recorded like any other output; an identical file already there is kept."""
        source, target = Path(source), Path(target)
        self._contained(target)
        digest = sha256_of(source)
        if target.is_file() and not target.is_symlink() and sha256_of(target) == digest:
            self._record(target, digest)
            return target
        self.check(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._record(target, digest)
        if link:
            staged = target.with_name(f".{target.name}.link.tmp")
            staged.unlink(missing_ok=True)
            try:
                os.link(source, staged)
                os.replace(staged, target)
                return target
            except OSError:
                staged.unlink(missing_ok=True)
        return self.write_bytes(target, source.read_bytes())

    def remove_if_ours(self, path: Path) -> bool:
        """Delete ``path`` when it holds exactly what fishbear wrote there (a file a later run of
        the same command no longer writes); a file of the user's, or changed since, is kept."""
        path = Path(path)
        self._contained(path)
        if path.is_file() and not path.is_symlink() and self.is_ours(path):
            path.unlink()
            return True
        return False

    def _record(self, path: Path, digest: str) -> None:
        folder = path.parent.absolute()
        journal = self._journal(folder)
        if digest in journal.get(path.name, set()):
            return
        handle = self._handles.get(folder)
        if handle is None:
            handle = self._handles[folder] = StateAppender(folder / JOURNAL, "journal of the files it wrote")
        # flushed: on disk for the next process before the file itself is renamed into place
        handle.write(json.dumps({"file": path.name, "sha256": digest}))
        journal.setdefault(path.name, set()).add(digest)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def note(self) -> str:
        """A clause for the command's last line when earlier output of fishbear's was replaced."""
        return f" ({self.replaced} file(s) of an earlier fishbear run replaced)" if self.replaced else ""

    def __enter__(self) -> OutputFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def refuse_stem_clashes(keys: Iterable[tuple[str, Path]], what: str) -> None:
    """Two inputs that would write one output file (``X.jpg`` and ``X.png`` -> ``X.xml``): one
    error naming both, before anything is written."""
    seen: dict[str, Path] = {}
    for key, source in keys:
        if key in seen and seen[key] != source:
            raise DataError(f"{seen[key]} and {source} would both be written as {what} {key!r}: one label file "
                            "cannot hold two images. Rename one of them.")
        seen[key] = source
