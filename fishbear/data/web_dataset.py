"""A dataset from image-search URL lists: fetched, verified, cleaned, written as an ImageFolder.

Two phases, so that a killed fetch loses nothing and a second run fetches nothing twice:

1. **download**: each URL's bytes go, under their sha256, into ``out/.fetch/raw/``, and one JSON
   line per URL into ``out/.fetch/downloads.jsonl`` (appended and flushed as each finishes). A
   later run skips every URL with a line: bytes kept, or a failure a retry will not fix (HTTP 4xx,
   ``X-Robots-Tag``, too large); timeouts, 5xx and dropped connections are tried again
   (``retry_failed=true``: every failure).
2. **clean**, in the lists' order, from the kept bytes alone (fast, and run whole every time):
   each image decoded in full (a truncated JPEG fails here, not in training), its pixel count
   capped before decoding (decompression bombs), EXIF orientation applied, converted to RGB JPEG
   (``keep=lossless``: PNG), optionally letterboxed to a square (``square=pad``) and shrunk
   (``max_size``); exact copies (the same bytes at two URLs, or under two classes) kept once, the
   first; near copies (``fishbear.data.duplicates``' perceptual hash) reported, and flagged as
   label conflicts when in two classes; ``test_per_class`` images of each class drawn (seeded)
   into ``test/``. Written as ``out/train/<class>/<8-digit line>.jpg`` (``out/test/...``), which
   ``data=folder data.root=out`` trains on, and ``out/manifest.csv``, a row per input line.

Files are written under fishbear's output policy (:mod:`fishbear.core.outputs`): a file of the
user's in ``out`` is never replaced, and files of an earlier run that this run no longer writes
(a photo now drawn into ``test/``) are removed only when they are still fishbear's own.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import random
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fishbear.core.atomic import atomic_write, atomic_write_text, exclusive
from fishbear.core.containment import StateAppender, inside, is_within, read_records
from fishbear.core.errors import DataError
from fishbear.core.outputs import OutputFiles, is_sha256
from fishbear.data.http_fetch import CONNECTION, TIMEOUT, Fetcher, FetchSettings, Response
from fishbear.data.url_lists import UrlEntry, UrlLists, read_url_lists

log = logging.getLogger(__name__)

STATE = ".fetch"
MANIFEST = "manifest.csv"
COLUMNS = ("source", "line", "url", "class", "status", "http_status", "content_type", "bytes", "sha256", "width",
           "height", "file", "duplicate_of", "near_duplicate_of", "error")
# a run that reaches no server at all among its first URLs stops: the machine is offline
OFFLINE_PROBE = 8


class OfflineError(DataError):
    """No URL answered: one line saying so, and where the images can go instead."""


@dataclass(frozen=True)
class CleanSettings:
    """What the clean phase does with the kept bytes."""

    keep: str = "jpeg"           # jpeg (RGB, quality 95) or lossless (PNG)
    square: str | None = None     # pad: letterboxed to a square (black), the Level-2 "square-padded"
    max_size: int | None = None   # the longer side at most this many pixels
    max_pixels: int = 40_000_000  # refused before decoding above this (decompression bombs)
    test_per_class: int = 0       # images of each class drawn into test/ (seeded)
    seed: int = 42
    near_bits: int = 6            # perceptual-hash distance that counts as a near copy
    quality: int = 95

    def check(self) -> None:
        if self.keep not in ("jpeg", "lossless"):
            raise DataError(f"keep={self.keep}: use jpeg or lossless.")
        if self.square not in (None, "pad"):
            raise DataError(f"square={self.square}: use pad (or leave it out).")
        if self.max_size is not None and self.max_size < 8:
            raise DataError(f"max_size={self.max_size}: give at least 8 pixels (or leave it out).")
        if self.test_per_class < 0:
            raise DataError(f"test_per_class={self.test_per_class}: give 0 or more.")
        if self.max_pixels < 1:
            raise DataError(f"max_pixels={self.max_pixels}: give 1 or more.")
        if not 0 <= self.near_bits <= 64:
            raise DataError(f"near_bits={self.near_bits}: give 0 to 64 (bits of a 64-bit perceptual hash).")
        if not 1 <= self.quality <= 100:
            raise DataError(f"quality={self.quality}: give a JPEG quality from 1 to 100.")


@dataclass
class Row:
    """One input line's fate: a row of ``manifest.csv``."""

    source: str
    line: int
    url: str
    label: str
    status: str = ""       # ok, failed, duplicate, skipped
    http_status: int | None = None
    content_type: str = ""
    bytes: int | None = None
    sha256: str = ""
    width: int | None = None
    height: int | None = None
    file: str = ""
    duplicate_of: str = ""
    near_duplicate_of: str = ""
    error: str = ""

    def cells(self) -> dict[str, Any]:
        values = asdict(self)
        values["class"] = values.pop("label")
        return {c: "" if values[c] is None else values[c] for c in COLUMNS}


@dataclass
class Outcome:
    """What a fetch did, for the summary line and the tests."""

    rows: list[Row]
    blank: int
    fetched_now: int
    near_pairs: list[tuple[str, str, int]] = field(default_factory=list)
    removed: int = 0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    def summary(self) -> str:
        failed = [r for r in self.rows if r.status == "failed"]
        causes = Counter(_cause(r.error) for r in failed)
        across = sum(1 for a, b, _ in self.near_pairs if _label(a) != _label(b))
        conflicts = sum(1 for r in self.rows if r.status == "duplicate" and "another class" in r.duplicate_of)
        parts = [f"{self.count('ok')} ok, {len(failed)} failed"
                 + (": " + ", ".join(f"{n} {cause}" for cause, n in causes.most_common()) if failed else ""),
                 f"{self.count('duplicate')} exact duplicates removed"
                 + (f" ({conflicts} under two classes)" if conflicts else ""),
                 f"{len(self.near_pairs)} near-duplicate pairs ({across} across classes)"]
        skipped = self.count("skipped")
        if skipped:
            parts.append(f"{skipped} skipped")
        return "; ".join(parts) + f"; {self.blank} blank lines; {self.fetched_now} URLs fetched by this run"


def _cause(error: str) -> str:
    if error.startswith("HTTP "):
        return error.split(":")[0]
    for cause in (TIMEOUT, CONNECTION, "not an image", "truncated", "too many pixels", "too large", "too many redirects",
                  "X-Robots-Tag"):
        if error.startswith(cause):
            return cause
    return error.split(":")[0][:40]


# -- phase 1: download -------------------------------------------------------------------------
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


# -- phase 2: clean ----------------------------------------------------------------------------
def verified(data: bytes, settings: CleanSettings) -> tuple[bytes, str, tuple[int, int], Any]:
    """The image in ``data`` decoded whole and re-encoded: (bytes, suffix, (width, height), the
    RGB picture for the near-copy hash). Raises ``ValueError`` with the reason when it is none."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            if width * height > settings.max_pixels:
                raise ValueError(f"too many pixels: {width} x {height} (max_pixels={settings.max_pixels}), a "
                                 "possible decompression bomb")
            opened.load()
            picture = ImageOps.exif_transpose(opened).convert("RGB")
    except UnidentifiedImageError:
        start = data[:64].lstrip().lower()
        kind = "an HTML page" if start.startswith((b"<!doctype html", b"<html")) else f"{len(data)} bytes of no image format"
        raise ValueError(f"not an image ({kind})") from None
    except Image.DecompressionBombError as err:
        raise ValueError(f"too many pixels: {err}") from None
    except OSError as err:
        raise ValueError(f"truncated or damaged image ({err})") from None
    if settings.square == "pad" and picture.width != picture.height:
        side = max(picture.size)
        canvas = Image.new("RGB", (side, side))
        canvas.paste(picture, ((side - picture.width) // 2, (side - picture.height) // 2))
        picture = canvas
    if settings.max_size and max(picture.size) > settings.max_size:
        scale = settings.max_size / max(picture.size)
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                                 Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if settings.keep == "lossless":
        picture.save(buffer, format="PNG")
        return buffer.getvalue(), ".png", picture.size, picture
    picture.save(buffer, format="JPEG", quality=settings.quality)
    return buffer.getvalue(), ".jpg", picture.size, picture


def _near_pairs(prints: dict[str, Any], bits: int) -> list[tuple[str, str, int]]:
    """Pairs of written images whose perceptual hashes differ in at most ``bits`` and whose colour
    thumbnails agree (``fishbear.data.duplicates``' test), closest first."""
    import numpy as np

    from fishbear.data.duplicates import THUMB_TOLERANCE, hamming

    keys = list(prints)
    if len(keys) < 2:
        return []
    hashes = np.array([prints[k].phash for k in keys], dtype=np.uint64)
    thumbs = np.stack([np.frombuffer(prints[k].thumb, dtype=np.uint8).astype(np.float32) for k in keys])
    distance = hamming(hashes, hashes)
    pairs = []
    for i, j in zip(*np.nonzero(np.triu(distance <= bits, k=1))):
        if prints[keys[i]].sha1 != prints[keys[j]].sha1 and np.abs(thumbs[i] - thumbs[j]).mean() <= THUMB_TOLERANCE:
            pairs.append((keys[i], keys[j], int(distance[i, j])))
    return sorted(pairs, key=lambda p: (p[2], p[0], p[1]))


def clean(lists: UrlLists, record: DownloadLog, out: Path, settings: CleanSettings,
          outputs: OutputFiles) -> tuple[list[Row], list[tuple[str, str, int]], int]:
    """Phase 2: the rows of the manifest, the near-copy pairs, and how many stale files were removed."""
    from fishbear.data.duplicates import fingerprint_of_picture

    rows: list[Row] = []
    kept: dict[str, Row] = {}  # sha256 of the downloaded bytes -> the row that kept them
    payload: dict[int, tuple[bytes, Any]] = {}  # id(row) -> (bytes to write, fingerprint)
    for entry in lists.entries:
        row = Row(entry.source, entry.line, entry.url, entry.label)
        rows.append(row)
        if not entry.valid:
            row.status, row.error = "skipped", "not an http(s) URL" if entry.label != "_unlabelled" else "no label"
            continue
        found = record.entries.get(entry.key)
        if found is None or found.get("url") != entry.url:
            row.status, row.error = "failed", "not fetched (the fetch was stopped before this URL)"
            continue
        row.http_status, row.content_type = found.get("http_status"), found.get("content_type", "")
        row.error = found.get("error", "")
        if not found.get("sha256"):
            row.status = "skipped" if row.error.startswith("X-Robots-Tag") else "failed"
            continue
        row.sha256, row.bytes = found["sha256"], found.get("bytes")
        first = kept.get(row.sha256)
        if first is not None:
            other = "" if first.label == row.label else " (another class: a label conflict)"
            row.status, row.duplicate_of = "duplicate", f"{first.source}:{first.line}{other}"
            continue
        try:
            data, suffix, (row.width, row.height), picture = verified((record.raw / row.sha256).read_bytes(), settings)
        except ValueError as err:
            row.status, row.error = "failed", str(err)
            continue
        except OSError as err:
            row.status, row.error = "failed", f"kept bytes unreadable ({err.strerror}); fetch again with retry_failed=true"
            continue
        row.status, row.error, row.file = "ok", "", f"{entry.label}/{entry.name}{suffix}"
        kept[row.sha256] = row
        payload[id(row)] = (data, fingerprint_of_picture(picture, data))
    _draw_test(rows, settings)
    removed = _remove_stale(out, {r.file for r in rows if r.status == "ok"}, outputs)
    prints = {}
    for row in rows:
        if row.status == "ok":
            data, prints[row.file] = payload[id(row)]
            outputs.write_bytes(out / row.file, data)
    pairs = _near_pairs(prints, settings.near_bits)
    by_file = {r.file: r for r in rows if r.status == "ok"}
    for a, b, bits in pairs:
        for mine, other in ((a, b), (b, a)):
            row = by_file[mine]
            if not row.near_duplicate_of:
                conflict = " (another class: a label conflict)" if _label(mine) != _label(other) else ""
                row.near_duplicate_of = f"{other} ({bits} bits){conflict}"
    return rows, pairs, removed


def _label(file: str) -> str:
    """The class of ``train/<class>/<name>``."""
    return file.split("/")[1]


def _draw_test(rows: list[Row], settings: CleanSettings) -> None:
    """``train/<class>/...`` for every kept image, ``test/<class>/...`` for the drawn ones."""
    by_class: dict[str, list[Row]] = {}
    for row in rows:
        if row.status == "ok":
            by_class.setdefault(row.label, []).append(row)
    for label, members in sorted(by_class.items()):
        drawn: set[int] = set()
        if settings.test_per_class:
            if len(members) <= settings.test_per_class:
                raise DataError(f"class '{label}' has {len(members)} usable images: test_per_class="
                                f"{settings.test_per_class} would leave none to train on.")
            rng = random.Random(f"{settings.seed}:{label}")
            drawn = {id(r) for r in rng.sample(members, settings.test_per_class)}
        for row in members:
            row.file = f"{'test' if id(row) in drawn else 'train'}/{row.file}"


def _remove_stale(out: Path, planned: set[str], outputs: OutputFiles) -> int:
    """Files an earlier fetch wrote that this one does not (listed in the old manifest). A
    manifest is read as data: a ``file`` cell that is not ``train|test/<class>/<name>`` inside
    ``out`` (an absolute path, ``..``, a link out) is one error naming its line, and nothing is
    removed; a file that is not fishbear's own (``overwrite=true`` or not) is kept."""
    old = out / MANIFEST
    if not old.is_file() or old.is_symlink():
        return 0
    stale = []
    with old.open(newline="", encoding="utf-8", errors="replace") as handle:
        for line, cells in enumerate(csv.DictReader(handle), start=2):
            file = (cells.get("file") or "").strip() if isinstance(cells.get("file"), str) else ""
            if not file or file in planned:
                continue
            where = f"{old}, line {line}"
            path = inside(out, file, "the file", where)
            if len(Path(file).parts) != 3 or Path(file).parts[0] not in ("train", "test"):
                raise DataError(f"{where}: the file {file!r} is not train/<class>/<name> or test/<class>/<name>, the "
                                "only files a fetch writes. Correct that cell, or delete the manifest (nothing is "
                                "removed then).")
            stale.append(path)
    return sum(outputs.remove_if_ours(path) for path in stale)


def write_manifest(rows: list[Row], out: Path, outputs: OutputFiles) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS))
    writer.writeheader()
    writer.writerows(r.cells() for r in rows)
    return outputs.write_text(out / MANIFEST, buffer.getvalue())


# -- the whole step ------------------------------------------------------------------------------
def fetch_dataset(urls: str | Path, out: str | Path, label: str | None = None, fetch: FetchSettings | None = None,
                  clean_settings: CleanSettings | None = None, retry_failed: bool = False, overwrite: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> Outcome:
    """URL lists at ``urls`` to an ImageFolder at ``out`` with its manifest (both phases), under a
    lock on the folder (two fetches into one folder run one after the other)."""
    fetch, clean_settings = fetch or FetchSettings(), clean_settings or CleanSettings()
    clean_settings.check()
    lists = read_url_lists(urls, label)
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise DataError(f"out={out} is a file; give a folder for the dataset.")
    outputs = OutputFiles(overwrite, way_out="another out=")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"out={out} cannot be made ({err.strerror}); give a folder you can write to.") from None
    outputs.keep_inside(out)
    outputs.check(out / MANIFEST)
    with exclusive(out / STATE / "lock"), outputs:
        record, fetched = download(lists, out, fetch, retry_failed, progress)
        rows, pairs, removed = clean(lists, record, out, clean_settings, outputs)
        write_manifest(rows, out, outputs)
        atomic_write_text(out / STATE / "summary.json", json.dumps({"urls": str(urls), "classes": lists.classes}) + "\n")
    return Outcome(rows, lists.blank, fetched, pairs, removed)


def settings_from(values: dict[str, Any]) -> tuple[FetchSettings, CleanSettings]:
    """The fetch and clean settings of flat ``key: value`` config entries (``conf/fetch.yaml``, a
    URL-list source); a key neither has is refused, naming the keys there are."""
    from dataclasses import fields

    names = {"fetch": {f.name for f in fields(FetchSettings)}, "clean": {f.name for f in fields(CleanSettings)}}
    unknown = sorted(set(values) - names["fetch"] - names["clean"])
    if unknown:
        raise DataError(f"unknown fetch setting(s) {', '.join(unknown)}; the settings are "
                        f"{', '.join(sorted(names['fetch'] | names['clean']))}.")
    pick = lambda group: {k: v for k, v in values.items() if k in names[group] and v is not None}  # noqa: E731
    for cls, group in ((FetchSettings, "fetch"), (CleanSettings, "clean")):
        _check_types(cls, pick(group))
    fetch, clean = FetchSettings(**pick("fetch")), CleanSettings(**pick("clean"))
    clean.check()
    _check_fetch(fetch)
    return fetch, clean


def _check_types(cls: type, values: dict[str, Any]) -> None:
    """Each given setting of the type its field declares (``max_size=abc`` is one line, not a
    TypeError when the first image is cleaned)."""
    from dataclasses import fields

    wanted = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
    for field_ in fields(cls):
        if field_.name not in values:
            continue
        value, kind = values[field_.name], str(field_.type).split("|")[0].strip()
        accepted = wanted.get(kind, (object,))
        if not isinstance(value, accepted) or (kind in ("int", "float") and isinstance(value, bool)):
            what = {"int": "a whole number", "float": "a number", "bool": "true or false"}.get(kind, "a word")
            raise DataError(f"{field_.name}={value!r}: give {what} (default {field_.default}).")


def _check_fetch(settings: FetchSettings) -> None:
    lowest = {"workers": 1, "timeout": 0.001, "retries": 0, "backoff": 0, "max_bytes": 1, "max_redirects": 0}
    for name, low in lowest.items():
        if getattr(settings, name) < low:
            raise DataError(f"{name}={getattr(settings, name)}: give {'more than 0' if low == 0.001 else f'{low} or more'}.")


class UrlListSource:
    """A data config's ``source`` of URL lists: ``data=bears data.source.urls=my_urls/`` fetches
    on first use into ``data.root`` (a root that already has its ``manifest.csv``, or no ``urls``
    given, is used as it is). Other keys are fetch settings (``test_per_class``, ``square``...)."""

    def __init__(self, urls: str | None = None, label: str | None = None, **settings: Any) -> None:
        self.urls, self.label = urls, label
        self.fetch, self.clean = settings_from(dict(settings))

    def prepare(self, root: str | Path, kind: Any = None) -> Path:
        root = Path(root).expanduser()
        if self.urls is None or (root / MANIFEST).is_file():
            return root
        with exclusive(root.parent / f".{root.name}.lock"):
            if (root / MANIFEST).is_file():
                return root
            if root.is_dir() and any(p.name != STATE for p in root.iterdir()):
                raise DataError(f"data.root={root} holds files but no {MANIFEST}: it is not a dataset fetched from URL "
                                "lists, and the fetch would mix its images into yours. Give a new or empty data.root "
                                "for data.source.urls, or leave data.source.urls out to train on the folder as it is.")
            outcome = fetch_dataset(self.urls, root, self.label, self.fetch, self.clean)
            log.info("fetched %s into %s: %s", self.urls, root, outcome.summary())
            print(f"fetched {self.urls} into {root}: {outcome.summary()}", file=sys.stderr)
        return root
