"""Fetch a dataset archive once, check it, unpack it: the ``source`` of download-backed data configs.

Users run ``data=pets`` on a fresh machine and expect the data to appear; on a machine without
internet (or behind a proxy) they need to be told which file to fetch by hand and exactly where to
put it. So every failure ends in one :class:`DownloadError` that names the URL, what went wrong and
both ways out (the archive into the download cache, or its extracted files into the dataset root).

Archives are written to ``<name>.part`` and renamed only once complete and checked, so a killed
download never looks finished; the next run resumes the ``.part`` with an HTTP ``Range`` request.
"""

from __future__ import annotations

import filecmp
import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from tqdm.auto import tqdm

from fishbear.core.atomic import exclusive
from fishbear.core.errors import DataError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
HASHES = ("md5", "sha1", "sha256")


class DownloadError(DataError):
    """A download or unpacking step failed; the message says what to do by hand."""


def _parse_checksum(checksum: str) -> tuple[str, str]:
    algorithm, sep, digest = checksum.partition(":")
    if not sep or algorithm not in HASHES or not digest:
        raise DownloadError(f"checksum {checksum!r} must read '<algorithm>:<hex digest>' with one of {', '.join(HASHES)}")
    return algorithm, digest.lower()


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_stream(response: IO[bytes], out: IO[bytes], done: int, total: int | None, label: str) -> int:
    with tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
              disable=None, leave=False) as bar:
        for chunk in iter(lambda: response.read(CHUNK), b""):
            out.write(chunk)
            done += len(chunk)
            bar.update(len(chunk))
    return done


def download(url: str, dest: Path, checksum: str | None = None, timeout: float = 60.0,
             manual_hint: str = "") -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify ``checksum``, return ``dest``.

    A ``dest`` already present with the right checksum is not fetched again; one with the wrong
    checksum is fetched afresh. ``manual_hint`` is appended to every error message.
    """
    dest = Path(dest)
    algorithm, expected = _parse_checksum(checksum) if checksum else (None, None)
    if algorithm is None and not dest.is_file():
        log.warning("%s has no checksum in its config (data.source.checksum): what arrives cannot be verified", url)
    if dest.is_file():
        if algorithm is None or file_digest(dest, algorithm) == expected:
            return dest
        log.warning("%s does not match its checksum; downloading it again", dest)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    hint = f" {manual_hint}" if manual_hint else ""

    def failed(what: str) -> DownloadError:
        kept = part.stat().st_size if part.is_file() else 0
        resume = f" {kept} bytes are kept in {part}; run again to resume." if kept else ""
        return DownloadError(f"Could not download {url}: {what}.{resume}{hint}")

    request = urllib.request.Request(url, headers={"User-Agent": "fishbear"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = getattr(response, "status", None) or 200
            resumed = have > 0 and status == 206
            if have and not resumed:
                log.info("%s ignored the resume request; downloading %s from the start", url, dest.name)
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None and length.isdigit() else None
            if have:
                log.info("resuming %s at byte %d", dest.name, have)
            with open(part, "ab" if resumed else "wb") as out:
                got = _copy_stream(response, out, have, total, dest.name)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the .part is already whole (or longer than the file)
            got, total = have, None
        else:
            raise failed(f"the server answered HTTP {err.code} {err.reason}") from None
    except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise failed(f"{reason} (no network, or the server is down?)") from None
    if total is not None and got != total:
        raise failed(f"the connection closed after {got} of {total} bytes")
    if algorithm is not None:
        actual = file_digest(part, algorithm)
        if actual != expected:
            part.unlink()
            raise DownloadError(
                f"{url} downloaded, but its {algorithm} is {actual}, not the expected {expected}: the file is "
                f"corrupt or has changed on the server. The bad copy was deleted; run again to retry.{hint}"
            )
    os.replace(part, dest)
    return dest


def _safe_members_zip(archive: zipfile.ZipFile, into: Path) -> None:
    base = into.resolve()
    for name in archive.namelist():
        target = (into / name).resolve()
        if base != target and base not in target.parents:
            raise DownloadError(f"{archive.filename} holds a path outside the folder it unpacks into: {name!r}")


def _clashes(new: Path, old: Path) -> list[tuple[Path, Path]]:
    """Paths under ``old`` that moving ``new`` in would replace (a file identical to the archive's
    is no clash: unpacking again changes nothing)."""
    if not old.exists() and not old.is_symlink():
        return []
    if new.is_dir() and old.is_dir() and not old.is_symlink():
        return [pair for child in new.iterdir() for pair in _clashes(child, old / child.name)]
    if new.is_file() and old.is_file() and not old.is_symlink() and filecmp.cmp(new, old, shallow=False):
        return []
    return [(new, old)]


def _move_new(new: Path, old: Path) -> None:
    """Move what ``old`` lacks from ``new`` into place (``_clashes`` found nothing to replace)."""
    if not old.exists() and not old.is_symlink():
        os.replace(new, old)
    elif new.is_dir() and old.is_dir():
        for child in new.iterdir():
            _move_new(child, old / child.name)


def extract(archive: Path, into: Path) -> Path:
    """Unpack a tar (any compression) or zip archive into ``into``, adding only what is new.

    Files go to a hidden sibling folder first and are moved into place only when the whole archive
    has been read, so an interrupted unpack leaves nothing that looks complete. Nothing already
    in ``into`` is replaced or deleted: a file the archive would overwrite with other contents is
    an error naming both, before anything moves.
    """
    archive, into = Path(archive), Path(into)
    into.mkdir(parents=True, exist_ok=True)
    staging = into.parent / f".{into.name}.unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tar:
                tar.extractall(staging, filter="data")
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                _safe_members_zip(zipped, staging)
                zipped.extractall(staging)
        else:
            raise DownloadError(f"{archive} is neither a tar nor a zip archive; delete it and run again.")
        clashes = [pair for entry in staging.iterdir() for pair in _clashes(entry, into / entry.name)]
        if clashes:
            new, old = clashes[0]
            raise DownloadError(
                f"Unpacking {archive} into {into} would replace {old} with the archive's "
                f"{new.relative_to(staging)} ({len(clashes)} such path(s)). Nothing was changed: move "
                f"{old} away (or delete it), or set data.root to another folder."
            )
        for entry in staging.iterdir():
            _move_new(entry, into / entry.name)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise DownloadError(f"Could not unpack {archive}: {err}. Delete it and run again.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return into


def _file_name(url: str) -> str:
    name = Path(unquote(urlparse(url).path)).name
    return name or "download"


@dataclass(frozen=True)
class Archive:
    """A dataset that comes as one archive at ``url``; a ``source`` for :class:`ImageDataModule`.

    ``expect`` is a path inside the dataset root that exists once the data is in place (e.g.
    ``images`` for Oxford pets): when it is there, nothing is fetched, so data put in place by hand
    is used as is. Archives are cached in ``cache_dir`` (default: ``<root>/../downloads``).
    """

    url: str
    expect: str
    checksum: str | None = None
    filename: str | None = None
    cache_dir: str | None = None
    timeout: float = 60.0

    def archive_path(self, root: Path) -> Path:
        cache = Path(self.cache_dir).expanduser() if self.cache_dir else Path(root).parent / "downloads"
        return cache / (self.filename or _file_name(self.url))

    def prepare(self, root: str | Path, kind: Any = None) -> Path:
        """Download and unpack unless ``root/expect`` is there; the same archive serves every kind."""
        root = Path(root).expanduser()
        wanted = root / self.expect
        if wanted.exists():
            return root
        root.parent.mkdir(parents=True, exist_ok=True)
        with exclusive(root.parent / f".{root.name}.lock"):  # parallel runs: one downloads, the others wait
            if wanted.exists():
                return root
            archive = self.archive_path(root)
            hint = (f"To install it by hand, download {self.url} and put it at {archive}, or unpack it so "
                    f"that {wanted} exists (or point data.root at a folder that has {self.expect}).")
            download(self.url, archive, self.checksum, timeout=self.timeout, manual_hint=hint)
            log.info("unpacking %s into %s", archive, root)
            extract(archive, root)
            if not wanted.exists():
                raise DownloadError(f"{archive} unpacked into {root}, but {wanted} is not there. {hint}")
        return root
