"""``fishbear review sweep=KFOLD rank=confident``: a k-fold sweep over pictures with labels flipped
on purpose, ranked by confident learning: the flips come first, each card says the likely label,
the estimated wrong labels per class go in the header, and ``ranking.csv`` lists the order (also
without serving the page). ``rank=confident`` is refused where there are no out-of-fold predictions."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from fishbear.review import main as review_main
from tests.commands.test_adapt import blob_picture
from tests.conftest import one_error, run_cli

FLIPPED = 8  # of 120 pictures


@pytest.fixture(scope="module")
def flipped_sweep(tmp_path_factory):
    """60 blob pictures per side, 8 of them filed under the other side; a 3-fold sweep of a small
    convnet trained on them (each picture predicted by the one model that did not see it)."""
    from PIL import Image

    tmp = tmp_path_factory.mktemp("confident")
    rng = np.random.default_rng(3)
    flips = set(rng.choice(120, FLIPPED, replace=False).tolist())
    for side in ("left", "right"):
        (tmp / "data" / "train" / side).mkdir(parents=True)
    planted = set()
    for i in range(120):
        side = ("left", "right")[i % 2]
        filed = ("right", "left")[i % 2] if i in flips else side
        Image.fromarray(blob_picture(rng, side)).save(tmp / "data" / "train" / filed / f"{i:03d}.png")
        if i in flips:
            planted.add(f"train/{filed}/{i:03d}.png")
    result = run_cli(["-m", "fishbear.train", "-m", "data=folder", f"data.root={tmp / 'data'}", "data.image_size=32",
                      "data.augment=null", "data.batch_size=16", "data.num_workers=0", "model=convnet",
                      "trainer.max_epochs=4", "trainer.num_sanity_val_steps=0", "logger=none", "data.split=kfold",
                      "data.folds=3", "data.fold=0,1,2", f"hydra.sweep.dir={tmp / 'sweep'}"], cwd=tmp, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "sweep", planted


@pytest.mark.slow  # a 3-fold sweep
def test_confident_learning_puts_the_flipped_labels_first_and_writes_the_ranking(flipped_sweep, capsys):
    sweep, planted = flipped_sweep
    ranking = review_main([f"sweep={sweep}", "rank=confident", "write_only=true"])
    rows = list(csv.DictReader(ranking.open()))
    assert [r["rank"] for r in rows] == [str(i) for i in range(1, 121)]
    assert {r["file"] for r in rows} >= planted and len(rows) == 120
    top = {r["file"] for r in rows[:FLIPPED]}
    assert len(top & planted) >= FLIPPED // 2, (sorted(top), sorted(planted))
    flagged = [r for r in rows if r["flagged"] == "1"]
    assert rows[:len(flagged)] == flagged  # the flagged cards come first
    for row in flagged:
        assert row["likely"] != row["given"] and -1.0 <= float(row["score"]) <= 1.0
    saved = json.loads((sweep / "review" / "review.json").read_text())
    assert saved["rank"] == "confident" and set(saved["estimated_wrong"]) == {"left", "right"}
    assert "estimated wrong labels: left" in saved["source"]
    assert 0 < sum(saved["estimated_wrong"].values()) < 40

    by_loss = list(csv.DictReader(review_main([f"sweep={sweep}", "rank=loss", "write_only=true"]).open()))
    assert sorted(r["file"] for r in by_loss) == sorted(r["file"] for r in rows)


def test_rank_confident_without_out_of_fold_predictions_is_one_line(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    line = one_error(review_main, [f"run={tmp_path / 'run'}", "rank=confident"], capsys)
    assert "rank=confident needs every image predicted by a model that did not train on it" in line
    line = one_error(review_main, [f"frames={tmp_path / 'run'}", "rank=confident"], capsys)
    assert "rank=confident ranks the labels of a k-fold sweep" in line
    line = one_error(review_main, [f"sweep={tmp_path / 'run'}", "rank=magic"], capsys)
    assert "rank=magic: choose among loss, confident" in line
