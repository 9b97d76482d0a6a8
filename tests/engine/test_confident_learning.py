"""Confident learning on a case small enough to work out by hand (the module's steps in order):
thresholds, the confident joint, the estimate of wrong labels per class, the flagged pictures and
the exact order of the cards."""

from __future__ import annotations

import numpy as np
import pytest

from fishbear.engine.review import confident

# nine pictures of three classes; picture 2 is labelled 0 but is a 1, picture 6 labelled 1 but is a 0
GIVEN = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
PROBABILITIES = np.array([
    [0.90, 0.05, 0.05],
    [0.80, 0.10, 0.10],
    [0.10, 0.85, 0.05],
    [0.70, 0.20, 0.10],
    [0.10, 0.80, 0.10],
    [0.20, 0.70, 0.10],
    [0.75, 0.20, 0.05],
    [0.10, 0.10, 0.80],
    [0.05, 0.15, 0.80],
])


def test_thresholds_are_each_class_mean_probability_on_its_own_pictures():
    assert np.allclose(confident.thresholds(PROBABILITIES, GIVEN), [2.5 / 4, 1.7 / 3, 0.8])


def test_the_confident_joint_counts_each_picture_under_the_class_over_its_threshold():
    assert confident.likely_classes(PROBABILITIES, GIVEN).tolist() == [0, 0, 1, 0, 1, 1, 0, 2, 2]
    assert confident.confident_joint(PROBABILITIES, GIVEN).tolist() == [[3, 1, 0], [1, 2, 0], [0, 0, 2]]
    assert np.allclose(confident.estimated_wrong(PROBABILITIES, GIVEN), [1, 1, 0])


def test_the_flagged_pictures_come_first_by_normalised_margin_then_the_rest():
    issues = confident.label_issues(PROBABILITIES, GIVEN)
    assert np.flatnonzero(issues.flagged).tolist() == [2, 6]
    assert issues.order.tolist() == [2, 6, 3, 5, 8, 1, 4, 7, 0]
    assert issues.likely[2] == 1 and issues.likely[6] == 0 and issues.likely[0] == 0
    assert issues.score[2] == pytest.approx(0.10 - 0.85) and issues.score[0] == pytest.approx(0.90 - 0.05)


def test_a_picture_over_several_thresholds_counts_under_its_most_probable_class():
    given = np.array([0, 1, 2])
    p = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.4, 0.3, 0.3]])
    assert confident.confident_joint(p, given).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    p[2] = [0.95, 0.03, 0.02]  # over class 0's threshold (0.9) and its own (0.02): counted as a 0
    q = confident.calibrated_joint(confident.confident_joint(p, given), given)
    assert q.sum() == pytest.approx(1.0) and q[2, 0] == pytest.approx(1 / 3)
    assert confident.label_issues(p, given).order[0] == 2


def test_multilabel_goes_tag_by_tag():
    # tag 0 is given to picture 3 which the model is sure lacks it; tag 1 is consistent
    p = np.array([[0.9, 0.1], [0.8, 0.9], [0.1, 0.8], [0.05, 0.2], [0.2, 0.85], [0.85, 0.1]])
    tags = np.array([[1, 0], [1, 1], [0, 1], [1, 0], [0, 1], [1, 0]])
    per_tag = confident.multilabel_issues(p, tags)
    assert np.flatnonzero(per_tag[0].flagged).tolist() == [3] and per_tag[0].order[0] == 3
    assert not per_tag[1].flagged.any()


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="N x K"):
        confident.label_issues(PROBABILITIES, GIVEN[:-1])
