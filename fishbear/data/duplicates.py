"""Near-duplicate images across splits, exact copies within a split, one file under two labels.

Image-search downloads repeat themselves (the same photo resized or re-encoded under another
name), and a copy of a test image in train makes the test figure a memory test. A perceptual hash
(``imagehash.phash``: 64 bits from the low frequencies of the image's DCT) changes little under
resizing and re-encoding, so two images whose hashes differ in at most ``threshold`` bits are
candidates; the hash sees only brightness, so a candidate counts as a copy when its 8 x 8 colour
thumbnail also matches (mean absolute difference at most ``THUMB_TOLERANCE`` of 255: measured,
a resized JPEG copy differs by about 1, distinct pictures with similar outlines by 36 or more). Hashes and a SHA-1
of the bytes are computed once per file and cached
(keyed by path, size and modification time), so the check costs milliseconds on later runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fishbear.data.catalog import Sample

log = logging.getLogger(__name__)

POLICIES = ("warn", "drop", "error", "report", "off")  # off: not looked for (a million frames, a benchmark)
# splits in the order of trust: a pair's copy is dropped from the earlier one (train before valid before test)
SPLIT_ORDER = {"train": 0, "valid": 1, "test": 2}
THUMB_TOLERANCE = 12.0
CACHE_NAME = "image-hashes-v2.json"


@dataclass(frozen=True)
class DuplicatePolicy:
    """What a near-copy of an image in another split does (``warn``, ``drop`` the train-side copy,
    ``error``, ``report`` only, or ``off``: not looked for); ``bits``: the largest perceptual-hash
    distance that counts as a copy."""

    policy: str = "warn"
    bits: int = 6

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            from fishbear.core.errors import DataError

            raise DataError(f"data.duplicates={self.policy!r}: use one of {', '.join(POLICIES)}.")

    def apply(self, catalog: Any, label_of: Any, cache_dir: Path | None, data_name: str) -> DuplicateCheck | None:
        """Look for near-copies across ``catalog``'s splits and act by the policy: the check made
        (None with ``off``: hashing every picture costs a pass over the data at setup).
        ``label_of``: a sample's label text, for copies filed under two labels (None: unlabelled)."""
        if self.policy == "off":
            return None
        every = [sample for samples in catalog.splits.values() for sample in samples]
        check = find_duplicates(catalog.splits, fingerprints([s.image for s in every], cache_dir), self.bits, label_of)
        check.policy = self.policy
        if check.across_labels:
            first = check.across_labels[0]
            log.warning("%d file(s) appear under two labels (same bytes), e.g. %s as %s: fix the labels or delete "
                        "the copy.", len(check.across_labels), " and ".join(first["files"][:2]), " and ".join(first["labels"]))
        if not check.leaks:
            return check
        if self.policy == "error":
            from fishbear.core.errors import DataError

            raise DataError(warning_line(check).replace("Possible leak", f"data={data_name}: leak")
                            + " (data.duplicates=error)")
        if self.policy == "drop":
            catalog.splits = drop_copies(catalog.splits, check)
            log.warning("data.duplicates=drop: removed %d train-side cop%s of held-out images.", check.dropped,
                        "y" if check.dropped == 1 else "ies")
        elif self.policy == "warn":
            log.warning(warning_line(check))
        return check


@dataclass(frozen=True)
class Fingerprint:
    sha1: str
    phash: int
    thumb: bytes  # 8 x 8 RGB, 192 bytes


def fingerprint_of_picture(rgb: Any, data: bytes) -> Fingerprint:
    """The fingerprint of an opened RGB picture whose file holds ``data``."""
    import imagehash
    from PIL import Image

    phash = int(str(imagehash.phash(rgb)), 16)
    return Fingerprint(hashlib.sha1(data).hexdigest(), phash, rgb.resize((8, 8), Image.BOX).tobytes())


def _fingerprint(path: Path) -> Fingerprint:
    from PIL import Image

    data = path.read_bytes()
    with Image.open(path) as image:
        image.draft("RGB", (128, 128))  # JPEG decodes at 1/2..1/8 scale: the hash reads 32 x 32 anyway
        return fingerprint_of_picture(image.convert("RGB"), data)


def fingerprints(paths: list[Path], cache_dir: Path | None) -> dict[Path, Fingerprint]:
    """A fingerprint per file, read from the cache in ``cache_dir`` when the file's size and
    modification time are unchanged; new ones are added to the cache (written atomically)."""
    from fishbear.core.atomic import atomic_write_text

    cache_path = cache_dir / CACHE_NAME if cache_dir is not None else None
    cache: dict[str, list[Any]] = {}
    if cache_path is not None and cache_path.is_file():
        try:
            cache = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            cache = {}  # a damaged cache is rebuilt, never an error
    out: dict[Path, Fingerprint] = {}
    changed = False
    for path in paths:
        key = str(path.resolve())
        stat = path.stat()
        entry = cache.get(key)
        if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            out[path] = Fingerprint(entry[2], int(entry[3], 16), bytes.fromhex(entry[4]))
            continue
        try:
            found = _fingerprint(path)
        except Exception:  # an unreadable image is the readers' business, not this check's
            continue
        out[path] = found
        cache[key] = [stat.st_size, stat.st_mtime_ns, found.sha1, f"{found.phash:016x}", found.thumb.hex()]
        changed = True
    if changed and cache_path is not None:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache_path, json.dumps(cache))
        except Exception as error:  # a read-only cache folder costs time, not the run
            log.debug("image hash cache not written: %s", error)
    return out


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between two arrays of 64-bit hashes (len(a) x len(b))."""
    return np.bitwise_count(a[:, None] ^ b[None, :])


@dataclass
class DuplicateCheck:
    """What was found; ``pairs`` are cross-split near copies, closest first."""

    threshold: int
    pairs: list[dict[str, Any]] = field(default_factory=list)
    images_with_copy: dict[str, int] = field(default_factory=dict)  # per held-out split: images with a copy elsewhere
    within_split: list[dict[str, Any]] = field(default_factory=list)
    across_labels: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0
    policy: str = "warn"

    @property
    def leaks(self) -> int:
        return sum(self.images_with_copy.values())

    def summary(self) -> dict[str, Any]:
        return {"policy": self.policy, "threshold_bits": self.threshold,
                "method": "imagehash.phash (64 bits), confirmed by an 8 x 8 colour thumbnail",
                "images_with_copy_in_another_split": self.images_with_copy, "pairs": len(self.pairs),
                "closest_pairs": self.pairs[:12], "exact_copies_within_a_split": self.within_split[:20],
                "same_file_under_two_labels": self.across_labels[:20], "dropped_from_train_side": self.dropped}


def find_duplicates(splits: dict[str, list[Sample]], prints: dict[Path, Fingerprint], threshold: int,
                    label_of: Any = None) -> DuplicateCheck:
    """Near copies across splits (phash within ``threshold`` bits), exact copies (same bytes) within
    a split, and exact copies with different labels (``label_of(sample)``, None for kinds whose
    targets are not labels)."""
    check = DuplicateCheck(threshold=threshold)
    names = sorted((n for n in splits if splits[n]), key=lambda n: SPLIT_ORDER.get(n, 3))
    hashes = {n: np.array([prints[s.image].phash for s in splits[n] if s.image in prints], dtype=np.uint64)
              for n in names}
    kept = {n: [s for s in splits[n] if s.image in prints] for n in names}
    thumbs = {n: np.array([np.frombuffer(prints[s.image].thumb, dtype=np.uint8) for s in kept[n]],
                          dtype=np.float32).reshape(len(kept[n]), 8 * 8 * 3) for n in names}
    copied_in = {n: np.zeros(len(hashes[n]), dtype=bool) for n in names}
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if not len(hashes[first]) or not len(hashes[second]):
                continue
            copied = copied_in[second]
            for start in range(0, len(hashes[second]), 2048):  # bounded memory for large test sets
                d = hamming(hashes[second][start:start + 2048], hashes[first])
                rows, cols = np.nonzero(d <= threshold)
                alike = np.abs(thumbs[second][start + rows] - thumbs[first][cols]).mean(1) <= THUMB_TOLERANCE
                rows, cols = rows[alike], cols[alike]
                copied[start + np.unique(rows)] = True
                for r, c in zip(rows.tolist(), cols.tolist()):
                    check.pairs.append({"distance": int(d[r, c]), "kept": str(kept[second][start + r].image),
                                        "kept_split": second, "copy": str(kept[first][c].image), "copy_split": first})
    check.images_with_copy = {n: int(copied_in[n].sum()) for n in names[1:]}
    check.pairs.sort(key=lambda p: (p["distance"], p["kept"], p["copy"]))
    by_bytes: dict[str, list[tuple[str, Sample]]] = defaultdict(list)
    for n in names:
        for sample in kept[n]:
            by_bytes[prints[sample.image].sha1].append((n, sample))
    for members in by_bytes.values():
        if len(members) < 2:
            continue
        per_split: dict[str, list[str]] = defaultdict(list)
        for n, sample in members:
            per_split[n].append(str(sample.image))
        check.within_split += [{"split": n, "files": files} for n, files in per_split.items() if len(files) > 1]
        if label_of is not None:
            labels = {label_of(sample) for _, sample in members}
            if len(labels) > 1:
                check.across_labels.append({"files": [str(s.image) for _, s in members],
                                            "labels": sorted(str(label) for label in labels)})
    return check


def drop_copies(splits: dict[str, list[Sample]], check: DuplicateCheck) -> dict[str, list[Sample]]:
    """Remove the earlier split's side of every cross-split pair (train before valid before test),
    so the held-out images stay and the model no longer trains on their copies."""
    doomed = {(p["copy_split"], p["copy"]) for p in check.pairs}
    out = {n: [s for s in samples if (n, str(s.image)) not in doomed] for n, samples in splits.items()}
    check.dropped = sum(len(splits[n]) - len(out[n]) for n in splits)
    return out


def warning_line(check: DuplicateCheck) -> str:
    shown = ", ".join(f"{n} images {k}" for n, k in check.images_with_copy.items() if k)
    example = check.pairs[0]
    return (f"Possible leak: {shown} have a near-copy in another split (perceptual hash within "
            f"{check.threshold} bits; e.g. {example['kept']} ~ {example['copy']}), so test figures may be "
            "optimistic. data.duplicates=drop removes the train-side copies; data.duplicates=error stops; "
            "for video frames or sequences split by time or group.")
