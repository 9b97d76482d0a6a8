"""Confident learning tag by tag for a multi-label k-fold sweep: the pictures whose yes or no for a
tag was flipped come first in ``tag_ranking.csv``, with the likely answer and an estimate of the
missing and extra tags; the page (which moves class folders) is not served for tags."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from fishbear.engine.review.tags import tag_ranking
from fishbear.review import main as review_main
from tests.conftest import run_cli


def test_a_flipped_tag_is_flagged_with_its_likely_answer_and_counted():
    """30 pictures, 2 tags, the model sure and right on all but two given answers: picture 3's
    ``cat`` was left out (missing), picture 7's ``dog`` given where it is not (extra)."""
    rng = np.random.default_rng(0)
    given = rng.integers(0, 2, (30, 2))
    probabilities = np.where(given == 1, rng.uniform(0.85, 0.95, (30, 2)), rng.uniform(0.05, 0.15, (30, 2)))
    given[3, 0], given[7, 1] = 0, 1  # the model still says yes to cat on 3 and no to dog on 7
    probabilities[3, 0], probabilities[7, 1] = 0.95, 0.04
    files = [f"{i:02d}.jpg" for i in range(30)]
    rows, estimate = tag_ranking(files, ["cat", "dog"], probabilities, given)
    assert len(rows) == 60 and [r["rank"] for r in rows] == list(range(1, 61))
    top = {(r["file"], r["tag"], r["given"], r["likely"]) for r in rows[:2]}
    assert top == {("03.jpg", "cat", "no", "yes"), ("07.jpg", "dog", "yes", "no")}
    assert all(r["flagged"] == 1 for r in rows[:2]) and not any(r["flagged"] for r in rows[2:])
    assert estimate["cat"]["missing"] >= 1 and estimate["dog"]["extra"] >= 1
    assert estimate["cat"]["extra"] == 0 and estimate["dog"]["missing"] == 0


FLIPPED = 8  # of 240 left / right answers


def tagged_picture(rng: np.random.Generator, sides: tuple[str, ...]) -> np.ndarray:
    """A 32 px picture of dark textured water with a bright blob in each named half."""
    picture = np.clip(rng.uniform(0.1, 0.4) * 255 + rng.normal(0, 20, (32, 32, 3)), 0, 255)
    rows, cols = np.mgrid[:32, :32]
    for side in sides:
        y, x = rng.integers(6, 26), rng.integers(4, 12) + (16 if side == "right" else 0)
        picture[(rows - y) ** 2 + (cols - x) ** 2 <= 16] = rng.uniform(200, 255, 3)
    return picture.astype(np.uint8)


@pytest.mark.slow  # a 3-fold sweep
def test_a_multilabel_sweep_writes_the_tag_ranking_with_the_flips_first(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(5)
    root = tmp_path / "data"
    (root / "train-jpg").mkdir(parents=True)
    rows, planted = [], set()
    flips = set(rng.choice(240, FLIPPED, replace=False).tolist())  # picture i's answer for tag i % 2
    for i in range(120):
        sides = [("left",), ("right",), ("left", "right")][i % 3]
        picture = tagged_picture(rng, sides)
        Image.fromarray(picture).save(root / "train-jpg" / f"p{i:03d}.jpg", quality=95)
        tags = set(sides)
        for t, tag in enumerate(("left", "right")):
            if 2 * i + t in flips:
                tags ^= {tag}
                planted.add((f"train-jpg/p{i:03d}.jpg", tag))
        rows.append(f"p{i:03d},{' '.join(sorted(tags | {'water'}))}")  # every picture has a tag
    (root / "train_v2.csv").write_text("image_name,tags\n" + "\n".join(rows) + "\n")
    result = run_cli(["-m", "fishbear.train", "-m", "data=planet", f"data.root={root}", "data.image_size=32",
                      "data.augment=null", "data.batch_size=16", "data.num_workers=0", "model=convnet",
                      "trainer.max_epochs=8", "trainer.num_sanity_val_steps=0", "logger=none", "data.split=kfold",
                      "data.folds=3", "data.fold=0,1,2", f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ranking = review_main([f"sweep={tmp_path / 'sweep'}", "rank=confident"])
    found = list(csv.DictReader(ranking.open()))
    assert len(found) == 360 and {r["tag"] for r in found} == {"left", "right", "water"}
    top = {(r["file"], r["tag"]) for r in found[:FLIPPED]}
    assert len(top & planted) >= FLIPPED // 2, (sorted(top), sorted(planted))
    saved = json.loads((tmp_path / "sweep" / "review" / "review.json").read_text())
    assert set(saved["estimated_wrong"]) == {"left", "right", "water"}
    assert not (tmp_path / "sweep" / "review" / "decisions.jsonl").exists()  # nothing served
    with pytest.raises(SystemExit):
        review_main([f"sweep={tmp_path / 'sweep'}", "rank=loss"])
