"""``fishbear review run=RUN unlabelled=DIR rank=uncertain``: unlabelled pictures queued for
labelling, the least sure first, no two alike (the diversity rule, exactly); a decision labels a
picture into the run's dataset: apply copies it into its class folder, undo takes the copy out, the
dataset and the unlabelled folder byte for byte as they were."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np

from fishbear.engine.review.queue import diverse_order
from tests.conftest import one_error
from tests.engine.review.test_review import _tree, reviewed_run  # noqa: F401  (the module's fixture)


def test_the_diversity_rule_passes_over_a_picture_like_one_queued():
    doubt = np.array([0.9, 0.8, 0.7, 0.6, 0.6])
    vectors = np.array([[1, 0], [0.99, 0.14], [0, 1], [1, 0.05], [-1, 0]])
    # 1 is 0's near-copy (cosine 0.99), 3 too (0.9988); 3 and 4 tie on doubt: by position
    assert diverse_order(doubt, vectors, 10, similar=0.95) == [0, 2, 4]
    assert diverse_order(doubt, vectors, 2, similar=0.95) == [0, 2]
    assert diverse_order(doubt, vectors, 10, similar=1.01) == [0, 1, 2, 3, 4]  # no rule: uncertainty alone


def test_unlabelled_pictures_are_queued_and_labelled_into_the_dataset_with_undo(reviewed_run, tmp_path, capsys):  # noqa: F811
    from fishbear.engine.review.log import DecisionLog
    from fishbear.review import main

    run, data = reviewed_run
    unlabelled = tmp_path / "new_pictures"
    unlabelled.mkdir()
    tests = sorted((data / "test").rglob("*.jpg"))
    for i, picture in enumerate(tests[:6]):
        shutil.copy(picture, unlabelled / f"new_{i}.jpg")
    for i in range(4):  # one picture four times over: one card at most
        shutil.copy(tests[6], unlabelled / f"again_{i}.jpg")
    before, before_unlabelled = _tree(data), _tree(unlabelled)
    ranking = main([f"run={run}", f"unlabelled={unlabelled}", "rank=uncertain", "queue=8", "write_only=true"])
    rows = list(csv.DictReader(ranking.open()))
    assert len(rows) <= 8 and sum(r["file"].startswith("again_") for r in rows) == 1
    doubts = [float(r["score"]) for r in rows]
    assert doubts == sorted(doubts, reverse=True)
    saved = json.loads((run / "review_unlabelled" / "review.json").read_text())
    classes = saved["classes"]
    first, second, third = rows[0]["file"], rows[1]["file"], rows[2]["file"]
    new = next(c for c in classes if c != rows[0]["likely"])
    log = DecisionLog(run / "review_unlabelled" / "decisions.jsonl")
    from fishbear.core.outputs import sha256_of

    log.decide(first, "relabel", new, classes, sha256_of(unlabelled / first))
    log.decide(second, "keep", None, classes)  # the model's answer is right
    log.decide(third, "remove", None, classes, sha256_of(unlabelled / third))  # not wanted
    main(["apply", f"run={run}", f"unlabelled={unlabelled}"])
    after = _tree(data)
    added = set(after) - set(before) - {".fishbear-review.json"}
    assert added == {f"train/{new}/{first}", f"train/{rows[1]['likely']}/{second}"}
    assert after[f"train/{new}/{first}"] == before_unlabelled[first]
    assert _tree(unlabelled) == before_unlabelled  # copied, not moved
    from fishbear.data.review_note import dataset_note

    assert dataset_note(data)["added"] == 2
    main(["apply", f"run={run}", f"unlabelled={unlabelled}"])  # idempotent
    assert _tree(data) == after
    main(["undo", f"run={run}", f"unlabelled={unlabelled}"])
    assert _tree(data) == before and _tree(unlabelled) == before_unlabelled

    line = one_error(main, [f"run={run}", "rank=uncertain"], capsys)
    assert "add unlabelled=DIR" in line
    line = one_error(main, [f"sweep={run}", f"unlabelled={unlabelled}"], capsys)
    assert "give run=, not sweep=" in line
    line = one_error(main, [f"run={run}", f"unlabelled={tmp_path / 'nothing'}", "rank=uncertain"], capsys)
    assert "is not a folder" in line
