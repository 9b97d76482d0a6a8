from pathlib import Path

import pytest

from fishbear.data.catalog import Sample
from fishbear.data.splits import split_off


def _samples(counts):
    return [Sample(Path(f"{c}_{i}.jpg"), c) for c, n in enumerate(counts) for i in range(n)]


def test_stratified_fraction_per_class_and_disjoint():
    samples = _samples([50, 10, 2])
    keep, held = split_off(samples, 0.2, seed=1, stratify=lambda s: s.target)
    assert len(keep) + len(held) == len(samples)
    assert not set(keep) & set(held)
    per_class = [sum(s.target == c for s in held) for c in range(3)]
    assert per_class == [10, 2, 1]  # the 2-image class keeps one on each side


def test_seeded_and_seed_sensitive():
    samples = _samples([40, 40])
    a = split_off(samples, 0.25, seed=3)[1]
    assert a == split_off(samples, 0.25, seed=3)[1]
    assert a != split_off(samples, 0.25, seed=4)[1]


def test_fraction_out_of_range():
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_off(_samples([3]), 1.5, seed=0)
