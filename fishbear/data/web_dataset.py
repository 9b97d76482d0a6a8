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
import io
import json
import logging
import random
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fishbear.core.atomic import atomic_write_text, exclusive
from fishbear.core.containment import inside
from fishbear.core.errors import DataError
from fishbear.core.outputs import OutputFiles
from fishbear.data.http_fetch import CONNECTION, TIMEOUT, FetchSettings
from fishbear.data.url_lists import UrlLists, read_url_lists
from fishbear.data.web_download import STATE, DownloadLog, download
from fishbear.data.web_pictures import CleanSettings, near_pairs, settings_from, verified

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
COLUMNS = ("source", "line", "url", "class", "status", "http_status", "content_type", "bytes", "sha256", "width",
           "height", "file", "duplicate_of", "near_duplicate_of", "error")
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


# -- phase 2: clean ----------------------------------------------------------------------------
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
    pairs = near_pairs(prints, settings.near_bits)
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
