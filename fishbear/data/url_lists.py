"""Image-search URL lists, read as the lesson's students have them.

Three layouts: a folder of one text file per class (``urls_grizzly.txt`` or ``grizzly.txt`` ->
``grizzly``), one text file with its class given, or a CSV with ``url`` and ``label`` (or
``class``) columns. Each URL keeps where it came from (its file and 0-based line), which names
the downloaded file as fastai's ``download_images`` did (line i -> ``<8-digit i>.jpg``), so a
list fetched twice, or by fastai before, names the same photo the same way. Blank lines are
counted; a line that is not an http(s) URL (``http://[::1/x.jpg`` included, which Python's URL
parser refuses) is kept as a malformed entry, for the manifest, not an error. A class becomes a
folder name, so it must be a plain one (:func:`fishbear.core.containment.plain_name`): a label
``../../x`` in a CSV, or ``class=../x``, is refused naming its file and line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from fishbear.core.containment import plain_name
from fishbear.core.errors import DataError

PREFIX = "urls_"


@dataclass(frozen=True)
class UrlEntry:
    """One line of a list: its file, its 0-based line (data row, for a CSV), the text and the class."""

    source: str
    line: int
    url: str
    label: str
    valid: bool = True

    @property
    def name(self) -> str:
        return f"{self.line:08d}"

    @property
    def key(self) -> str:
        """What identifies the line across runs (its class and name are unique in one list)."""
        return f"{self.label}/{self.name}"


@dataclass
class UrlLists:
    entries: list[UrlEntry] = field(default_factory=list)
    blank: int = 0
    files: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return sorted({e.label for e in self.entries})

    @property
    def malformed(self) -> int:
        return sum(not e.valid for e in self.entries)


def is_url(text: str) -> bool:
    try:
        parsed = urlparse(text)
        parsed.port  # noqa: B018 (a malformed port or IPv6 host raises here)
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.netloc) and " " not in text


def class_of(path: Path) -> str:
    """``urls_grizzly.txt`` and ``grizzly.txt`` -> ``grizzly``."""
    stem = path.stem
    return stem[len(PREFIX):] if stem.lower().startswith(PREFIX) and len(stem) > len(PREFIX) else stem


def _text_file(path: Path, label: str, out: UrlLists) -> None:
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror}).") from None
    for i, raw in enumerate(lines):
        text = raw.strip()
        if not text:
            out.blank += 1
            continue
        out.entries.append(UrlEntry(path.name, i, text, label, is_url(text)))
    out.files.append(path.name)


def _csv_file(path: Path, out: UrlLists) -> None:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        label_column = next((c for c in ("label", "class") if c in columns), None)
        if "url" not in columns or label_column is None:
            raise DataError(f"{path} is a CSV without 'url' and 'label' (or 'class') columns (it has: "
                            f"{', '.join(columns) or 'no header'}); give a header line url,label.")
        for i, row in enumerate(reader):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            url, label = row.get("url", ""), row.get(label_column, "")
            if not url and not label:
                out.blank += 1
                continue
            if label:
                plain_name(label, "the class", f"{path}, data row {i + 1}")
            out.entries.append(UrlEntry(path.name, i, url, label or "_unlabelled", is_url(url) and bool(label)))
    out.files.append(path.name)


def read_url_lists(path: str | Path, label: str | None = None) -> UrlLists:
    """The URL entries at ``path`` (a folder of per-class text files, a text file with ``label``,
    or a CSV ``url,label``)."""
    path = Path(path).expanduser()
    out = UrlLists()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".txt" and not p.name.startswith("."))
        if not files:
            raise DataError(f"{path} holds no .txt URL lists; put one file per class there (urls_<class>.txt or "
                            "<class>.txt, one URL a line), or give a CSV with url,label.")
        seen: dict[str, str] = {}
        for file in files:
            name = class_of(file)
            if name in seen:
                raise DataError(f"{path / seen[name]} and {file} are both lists of class '{name}'; merge them or rename one.")
            seen[name] = file.name
            plain_name(name, "the class", f"{file} (its file name)")
            _text_file(file, name, out)
    elif path.is_file() and path.suffix.lower() == ".csv":
        _csv_file(path, out)
    elif path.is_file():
        if not label:
            raise DataError(f"urls={path} is one list: say its class with class=<name> (or give a folder of "
                            "<class>.txt files, or a CSV url,label).")
        plain_name(str(label), "the class", "class=")
        _text_file(path, label, out)
    else:
        raise DataError(f"urls={path} does not exist; give a folder of per-class URL files, a URL file with class=, "
                        "or a CSV with url,label.")
    if not any(e.valid for e in out.entries):
        raise DataError(f"{path} holds no http(s) URL ({out.blank} blank lines, {out.malformed} other lines).")
    return out
