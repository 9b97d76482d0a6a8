"""Confident learning for multi-label pictures, tag by tag, over a k-fold sweep's out-of-fold
probabilities: whose yes or no for a tag is likely wrong (a tag missing, or one too many).

The review page moves pictures between class folders; a multi-label dataset keeps its tags in a
file (``image_name,tags``), so this writes the ranking for the person correcting that file:
``review/tag_ranking.csv`` (a row per picture and tag, the likely errors first) and the estimated
number of missing and extra tags per tag in ``review/review.json``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from fishbear.core.atomic import atomic_write_text
from fishbear.engine.review.confident import multilabel_issues
from fishbear.engine.review.items import check_out_of_fold, relative, sweep_runs

COLUMNS = ("file", "tag", "given", "likely", "score", "rank", "flagged")


def out_of_fold_tags(sweep_dir: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray, Path]:
    """Every picture of the sweep's test folds: its file (relative to the dataset), the tag names,
    the out-of-fold probability of each tag and the given tags (N x T, 0 or 1), and the dataset's root."""
    from fishbear.engine.checkpoint import read_meta
    from fishbear.engine.inference import Predictor
    from fishbear.engine.run_data import run_datamodule

    files: list[str] = []
    probabilities: list[list[float]] = []
    given: list[list[int]] = []
    tags: list[str] = []
    root = Path(".")
    for run in sweep_runs(sweep_dir):
        ckpt = run / "checkpoints" / "best.ckpt"
        meta = read_meta(ckpt)
        datamodule = run_datamodule(meta)
        predictor = Predictor.from_checkpoint(ckpt)
        tags, root = list(meta.classes), Path(datamodule.root)
        samples = datamodule.samples(datamodule.test_split)
        for sample, (_, answer) in zip(samples, predictor.predict_files([Path(s.image) for s in samples])):
            files.append(relative(Path(sample.image), root))
            probabilities.append([float(answer["probabilities"][t]) for t in tags])
            given.append([int(i in sample.target) for i in range(len(tags))])
    check_out_of_fold(sweep_dir, files)
    return files, tags, np.asarray(probabilities), np.asarray(given), root


def tag_ranking(files: list[str], tags: list[str], probabilities: np.ndarray,
                given: np.ndarray) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    """The rows of ``tag_ranking.csv``, flagged ones first, then by normalised margin (most
    doubtful first) across all tags; and per tag the estimated missing and extra tags."""
    rows, estimate = [], {}
    for t, issues in enumerate(multilabel_issues(probabilities, given)):
        name = tags[t]
        estimate[name] = {"missing": float(issues.wrong[0]), "extra": float(issues.wrong[1])}
        for i in range(len(files)):
            rows.append({"file": files[i], "tag": name, "given": "yes" if given[i, t] else "no",
                         "likely": "yes" if issues.likely[i] else "no", "score": round(float(issues.score[i]), 5),
                         "flagged": int(issues.flagged[i])})
    rows.sort(key=lambda r: (-r["flagged"], r["score"], r["file"], r["tag"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows, estimate


def write_tag_ranking(sweep_dir: Path, where: Path) -> Path:
    """``tag_ranking.csv`` and ``review.json`` in ``where`` (the sweep's review folder)."""
    files, tags, probabilities, given, root = out_of_fold_tags(sweep_dir)
    rows, estimate = tag_ranking(files, tags, probabilities, given)
    where.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in COLUMNS} for row in rows)
    atomic_write_text(where / "tag_ranking.csv", text.getvalue())
    flagged = sum(r["flagged"] for r in rows)
    atomic_write_text(where / "review.json", json.dumps(
        {"source": f"k-fold sweep {sweep_dir}: confident learning per tag on the out-of-fold probabilities",
         "root": str(root.absolute()), "classes": tags, "rank": "confident", "of": f"sweep={sweep_dir}",
         "estimated_wrong": estimate, "flagged": flagged}, indent=1) + "\n")
    return where / "tag_ranking.csv"
