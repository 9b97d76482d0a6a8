"""The note a review leaves at a dataset's root (``.fishbear-review.json``): what each review
relabelled and removed, kept apart by review. The review wing writes it when it applies or undoes
decisions; the data module reads it, so the next run's report says it beside its metric."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fishbear.core.atomic import atomic_write_text
from fishbear.core.containment import read_state

DATASET_NOTE = ".fishbear-review.json"


def _notes(root: Path) -> dict[str, dict[str, Any]]:
    """Each review's note at ``root`` (an older single note is read as one review's)."""
    try:
        found = json.loads(read_state(Path(root) / DATASET_NOTE, "review note") or "{}")
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    if "reviews" in found and isinstance(found["reviews"], dict):
        return {str(k): v for k, v in found["reviews"].items() if isinstance(v, dict)}
    return {str(found["review"]): found} if "review" in found else {}


def set_review_note(root: Path, review: str, note: dict[str, Any] | None) -> None:
    """Record (or, with None, take away) one review's note, leaving the other reviews' notes."""
    notes = _notes(root)
    notes.pop(review, None)
    if note is not None:
        notes[review] = {"review": review, **note}
    path = Path(root) / DATASET_NOTE
    if notes:
        atomic_write_text(path, json.dumps({"reviews": notes}, indent=1) + "\n")
    elif path.is_file() and not path.is_symlink():
        path.unlink()


def dataset_note(root: Path) -> dict[str, Any] | None:
    """What the reviews changed in the dataset at ``root`` (for the next run's report), or None:
    their names, and the images they relabelled and removed, added up."""
    notes = _notes(root)
    if not notes:
        return None
    values = list(notes.values())
    return {"review": "; ".join(sorted(notes)), "relabelled": sum(int(v.get("relabelled", 0)) for v in values),
            "removed": sum(int(v.get("removed", 0)) for v in values), "added": sum(int(v.get("added", 0)) for v in values),
            "applied": max(str(v.get("applied", "")) for v in values)}
