"""Confident learning: which given labels are likely wrong, from out-of-fold probabilities
(Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels",
JAIR 70, 2021), written from the paper.

Why not the loss: a ranking by ``-log p(given)`` treats every class alike, so a class the model is
unsure of as a whole (its probabilities low everywhere) fills the top of the list with pictures
that are labelled right. Confident learning compares each probability with its class's own
threshold, the mean probability the model gives that class on the pictures labelled with it:

1. ``t_j`` = mean of ``p_j`` over the pictures labelled ``j`` (:func:`thresholds`);
2. a picture labelled ``i`` counts towards the *confident joint* ``C[i][j]`` for the class ``j``
   whose probability is over its threshold (the most probable of them when several are), and
   towards no cell when none is (:func:`confident_joint`);
3. the joint is calibrated so each row sums to the number of pictures labelled ``i`` and the whole
   to 1 (:func:`calibrated_joint`): ``Q[i][j]`` estimates the share of the data labelled ``i``
   whose true class is ``j``; ``n * Q[i][j]`` for ``j != i`` is how many of class ``i``'s labels
   are wrong that way (:func:`estimated_wrong`);
4. *prune by noise rate*: for each ``i != j``, the ``round(n * Q[i][j])`` pictures labelled ``i``
   with the largest margin ``p_j - p_i`` are flagged (:func:`flagged`);
5. the flagged pictures are ranked by *normalised margin* ``p_given - max_{k != given} p_k``
   (lowest first), the paper's best ranking (:func:`label_scores`), and the others follow in the
   same order.

Multi-label data (a tag set per picture) goes tag by tag, each a yes/no question
(:func:`multilabel_issues`). Detection is not covered: it needs out-of-fold boxes matched to the
given ones (missing, extra, wrong-class boxes), a method of its own (ObjectLab).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _checked(probabilities: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(given, dtype=np.int64)
    if p.ndim != 2 or y.shape != (len(p),) or (len(y) and (y.min() < 0 or y.max() >= p.shape[1])):
        raise ValueError(f"probabilities must be N x K and given N class indices below K; got {p.shape} and {y.shape}")
    return p, y


def thresholds(probabilities: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Per class ``j``: the mean ``p_j`` over the pictures labelled ``j`` (1 where none is, so that
    an absent class is never called)."""
    p, y = _checked(probabilities, given)
    t = np.ones(p.shape[1])
    for j in range(p.shape[1]):
        if (y == j).any():
            t[j] = p[y == j, j].mean()
    return t


def likely_classes(probabilities: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Per picture, the class confident learning counts it under: the most probable class whose
    probability reaches its threshold, or -1 where none does."""
    p, y = _checked(probabilities, given)
    above = p >= thresholds(p, y)[None, :] - 1e-12
    masked = np.where(above, p, -np.inf)
    likely = masked.argmax(axis=1)
    return np.where(above.any(axis=1), likely, -1)


def confident_joint(probabilities: np.ndarray, given: np.ndarray) -> np.ndarray:
    """``C[i][j]``: the pictures labelled ``i`` confidently counted as ``j`` (K x K counts)."""
    p, y = _checked(probabilities, given)
    joint = np.zeros((p.shape[1], p.shape[1]), dtype=np.int64)
    likely = likely_classes(p, y)
    np.add.at(joint, (y[likely >= 0], likely[likely >= 0]), 1)
    return joint


def calibrated_joint(joint: np.ndarray, given: np.ndarray) -> np.ndarray:
    """The confident joint with each row scaled to the number of pictures labelled with its class,
    then divided by the total: an estimate of P(given = i, true = j)."""
    k = len(joint)
    counts = np.bincount(np.asarray(given, dtype=np.int64), minlength=k).astype(np.float64)
    rows = joint.sum(axis=1, keepdims=True).astype(np.float64)
    scaled = np.where(rows > 0, joint / np.where(rows > 0, rows, 1) * counts[:, None], 0.0)
    # a class no picture was confidently counted under keeps its pictures on the diagonal
    scaled[np.arange(k), np.arange(k)] += np.where(rows[:, 0] > 0, 0.0, counts)
    return scaled / max(scaled.sum(), 1e-12)


def estimated_wrong(probabilities: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Per class: how many of the pictures labelled with it are estimated to belong elsewhere."""
    p, y = _checked(probabilities, given)
    q = calibrated_joint(confident_joint(p, y), y)
    off = q.copy()
    np.fill_diagonal(off, 0.0)
    return off.sum(axis=1) * len(y)


def label_scores(probabilities: np.ndarray, given: np.ndarray) -> np.ndarray:
    """The normalised margin ``p_given - max_{k != given} p_k``, from -1 (surely wrong) to 1."""
    p, y = _checked(probabilities, given)
    own = p[np.arange(len(y)), y]
    others = p.copy()
    others[np.arange(len(y)), y] = -np.inf
    return own - others.max(axis=1)


def flagged(probabilities: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Prune by noise rate: for each ``i != j`` the ``round(n Q[i][j])`` pictures labelled ``i``
    with the largest ``p_j - p_i`` (at most those labelled ``i``). A boolean per picture."""
    p, y = _checked(probabilities, given)
    q = calibrated_joint(confident_joint(p, y), y)
    n, k = len(y), p.shape[1]
    marked = np.zeros(n, dtype=bool)
    for i in range(k):
        members = np.flatnonzero(y == i)
        for j in range(k):
            if i == j or not len(members):
                continue
            count = min(int(round(n * q[i, j])), len(members))
            if count <= 0:
                continue
            margin = p[members, j] - p[members, i]
            order = np.lexsort((members, -margin))  # largest margin first, ties by position
            marked[members[order[:count]]] = True
    return marked


@dataclass
class LabelIssues:
    """``order``: picture indices, the likely errors first; ``flagged``, ``score`` and ``likely``
    (the class the picture most likely is, given as an index) per picture; ``wrong``: the estimated
    number of wrong labels per class; ``thresholds``: per class."""

    order: np.ndarray
    flagged: np.ndarray
    score: np.ndarray
    likely: np.ndarray
    wrong: np.ndarray
    thresholds: np.ndarray


def label_issues(probabilities: np.ndarray, given: np.ndarray) -> LabelIssues:
    """Everything the review needs from confident learning, for single-label pictures."""
    p, y = _checked(probabilities, given)
    marks = flagged(p, y)
    score = label_scores(p, y)
    others = p.copy()
    others[np.arange(len(y)), y] = -np.inf
    likely = np.where(marks, others.argmax(axis=1), p.argmax(axis=1))
    order = np.lexsort((np.arange(len(y)), score, ~marks))
    return LabelIssues(order, marks, score, likely, estimated_wrong(p, y), thresholds(p, y))


def multilabel_issues(probabilities: np.ndarray, tags: np.ndarray) -> list[LabelIssues]:
    """Per tag, the pictures whose yes/no for it is likely wrong: each tag's column of
    probabilities ``p`` as the two-class ``[1 - p, p]``, its given yes/no as the label."""
    p = np.asarray(probabilities, dtype=np.float64)
    given = np.asarray(tags).astype(np.int64)
    if p.shape != given.shape or p.ndim != 2:
        raise ValueError(f"probabilities and tags must both be N x T; got {p.shape} and {given.shape}")
    return [label_issues(np.stack([1.0 - p[:, t], p[:, t]], axis=1), given[:, t]) for t in range(p.shape[1])]
