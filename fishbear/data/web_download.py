"""Phase 1 of a dataset from URL lists (:mod:`fishbear.data.web_dataset`): each URL's bytes kept
under their sha256 in ``out/.fetch/raw/``, and one JSON line per URL in
``out/.fetch/downloads.jsonl``, appended and flushed as each finishes, so a killed fetch loses
nothing and a second run fetches nothing twice."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from fishbear.core.atomic import atomic_write
from fishbear.core.containment import StateAppender, is_within, read_records
from fishbear.core.errors import DataError
from fishbear.core.outputs import is_sha256
from fishbear.data.http_fetch import CONNECTION, Fetcher, FetchSettings, Response
from fishbear.data.url_lists import UrlEntry, UrlLists

STATE = ".fetch"
# a run that reaches no server at all among its first URLs stops: the machine is offline
OFFLINE_PROBE = 8


class OfflineError(DataError):
    """No URL answered: one line saying so, and where the images can go instead."""


class DownloadLog:
    """``out/.fetch/downloads.jsonl``: the last word on each URL line, and ``raw/<sha256>``.

    The log is read as data, not trusted: a line that is not one of fishbear's records (a
    ``sha256`` that is not 64 hex digits, a path in its place, a field of the wrong type) is one
    error naming the file, the line and the fix; only a last line a kill cut short is passed over
    (that URL is fetched again). The log and the folders under ``.fetch`` are never links."""

    def __init__(self, out: Path) -> None:
        self.folder = out / STATE
        self.raw = self.folder / "raw"
        self.path = self.folder / "downloads.jsonl"
        self.entries: dict[str, dict[str, Any]] = {}
        for folder in (self.folder, self.raw):
            if folder.is_symlink() or (folder.exists() and not is_within(folder, out)):
                raise DataError(f"{folder} is a link: fishbear keeps its fetch state there and writes nothing through "
                                "a link. Remove it (the fetch starts its download log afresh).")
        # a line cut by a kill is passed over: that URL is fetched again
        for entry in read_records(self.path, "download log", "a download record of fishbear's", _check_download,
                                  f"Delete that line (its URL is fetched again), or the whole {self.folder} folder."):
            self.entries[entry["key"]] = entry

    def done(self, entry: UrlEntry, retry_failed: bool) -> bool:
        found = self.entries.get(entry.key)
        if not found or found.get("url") != entry.url:
            return False
        if found.get("sha256"):
            return (self.raw / found["sha256"]).is_file()
        return not (found.get("transient") or retry_failed)

    def add(self, entry: UrlEntry, response: Response, handle: StateAppender) -> None:
        record: dict[str, Any] = {"key": entry.key, "url": entry.url, "http_status": response.http_status,
                                  "content_type": response.content_type, "error": response.error,
                                  "transient": response.transient, "attempts": response.attempts}
        if response.data is not None:
            digest = hashlib.sha256(response.data).hexdigest()
            target = self.raw / digest
            if not target.is_file() or target.is_symlink():
                data = response.data
                atomic_write(target, lambda stream: stream.write(data))
            record.update(sha256=digest, bytes=len(response.data))
        handle.write(json.dumps(record))
        self.entries[entry.key] = record


_RECORD_TYPES = {"key": str, "url": str, "error": str, "content_type": str, "transient": bool, "attempts": int}


def _check_download(entry: dict[str, Any]) -> None:
    """One line of the download log, checked field by field (``ValueError`` says what is wrong)."""
    for name, kind in _RECORD_TYPES.items():
        if name in ("key", "url") and name not in entry:
            raise ValueError(f"it has no {name!r}")
        if name in entry and not isinstance(entry[name], kind):
            raise ValueError(f"{name!r} is not a {kind.__name__}")
    digest = entry.get("sha256")
    if digest is not None and not is_sha256(digest):
        raise ValueError(f"'sha256' {str(digest)[:80]!r} is not 64 hex digits")
    for name in ("bytes", "http_status"):
        if entry.get(name) is not None and (not isinstance(entry[name], int) or isinstance(entry[name], bool)):
            raise ValueError(f"{name!r} is not a whole number")


def download(lists: UrlLists, out: Path, settings: FetchSettings, retry_failed: bool = False,
             progress: Callable[[int, int], None] | None = None) -> tuple[DownloadLog, int]:
    """Phase 1; returns the log and how many URLs this run fetched."""
    record = DownloadLog(out)
    todo = [e for e in lists.entries if e.valid and not record.done(e, retry_failed)]
    record.raw.mkdir(parents=True, exist_ok=True)
    if not todo:
        return record, 0
    fetcher = Fetcher(settings)
    finished = reached = unreached = 0
    first_error = ""
    handle = StateAppender(record.path, "download log")
    with ThreadPoolExecutor(max(1, settings.workers)) as pool:
        pending = {pool.submit(fetcher.fetch, e.url): e for e in todo}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    entry = pending.pop(future)
                    response = future.result()
                    record.add(entry, response, handle)
                    finished += 1
                    reached += response.reached
                    if not response.reached and response.error.startswith(CONNECTION):
                        unreached += 1
                        first_error = first_error or response.error
                    if progress:
                        progress(finished, len(todo))
                if reached == 0 and unreached >= min(OFFLINE_PROBE, len(todo)):
                    raise OfflineError(
                        f"none of the first {unreached} URLs could be reached ({first_error}): this machine seems "
                        f"offline. Run the fetch where the web is reachable (it resumes), or put the images in "
                        f"{out}/train/<class>/ yourself.")
        finally:
            for future in pending:
                future.cancel()
            handle.close()
    return record, finished
