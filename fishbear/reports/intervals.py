"""95% intervals for every test metric: how much the figure would move on another test set.

A test set of 115 images moves accuracy by 0.87 points per image; a single number hides that, and
a sweep ranks noise. Each kind states its metrics as a function of per-image weights
(``Kind.metric_function``: weight k means the image counts k times), so one seeded bootstrap
serves every kind: resample the test images with replacement (or whole groups, when the split
is grouped or by time: neighbouring frames are not independent evidence) and take the 2.5th
and 97.5th percentiles. Accuracy over independent images has a closed form (Wilson's score
interval), used instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

MetricFunction = Callable[[np.ndarray], dict[str, float]]
MIN_GROUPS = 5  # fewer groups than this in a test split: the group bootstrap has too little to draw from


def wilson(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a proportion (better than the normal one near 0 and 1)."""
    if n == 0:
        return float("nan"), float("nan")
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def resample_weights(n: int, groups: list[Any] | None, rng: np.random.Generator) -> np.ndarray:
    """One bootstrap draw as per-image counts: images drawn with replacement, or whole groups."""
    if groups is None:
        return rng.multinomial(n, np.full(n, 1.0 / n)).astype(np.float64)
    names, codes = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    drawn = rng.multinomial(len(names), np.full(len(names), 1.0 / len(names)))
    return drawn[codes].astype(np.float64)


def bootstrap(metric_function: MetricFunction, n: int, groups: list[Any] | None = None, resamples: int = 1000,
              seed: int = 0, level: float = 0.95) -> dict[str, dict[str, Any]]:
    """Percentile intervals of each metric ``metric_function`` returns, from ``resamples`` seeded
    draws; a metric undefined in a draw (no positive image drawn) is left out of that draw."""
    note = ""
    if groups is not None and len(set(groups)) < MIN_GROUPS:
        # two or three groups cannot show the spread between groups: resample images and say so
        note = f" (the test split holds only {len(set(groups))} group(s): images resampled, which understates the spread)"
        groups = None
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        for name, value in metric_function(resample_weights(n, groups, rng)).items():
            if value is not None and np.isfinite(value):
                draws.setdefault(name, []).append(float(value))
    units = f"{len(set(groups))} groups" if groups is not None else f"{n} images"
    out = {}
    for name, values in draws.items():
        low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
        out[name] = {"low": float(low), "high": float(high), "level": level,
                     "method": f"bootstrap over {units}, {resamples} draws, seed {seed}{note}"}
    return out


def metric_intervals(metrics: dict[str, float], metric_function: MetricFunction | None, n: int,
                   groups: list[Any] | None, resamples: int = 1000, seed: int = 0,
                   proportions: dict[str, float] | None = None, level: float = 0.95) -> dict[str, dict[str, Any]]:
    """An interval per ``test/...`` metric the run logged: Wilson's for the ``proportions``
    (metric -> number of successes) when images are independent, else the bootstrap."""
    if metric_function is None or n == 0:
        return {}
    found = bootstrap(metric_function, n, groups, resamples, seed, level)
    out: dict[str, dict[str, Any]] = {}
    for key in metrics:
        name = key.removeprefix("test/")
        if groups is None and proportions and name in proportions:
            low, high = wilson(proportions[name], n, level)
            out[key] = {"low": low, "high": high, "level": level, "method": f"Wilson score interval, {n} images"}
        elif name in found:
            out[key] = found[name]
    return out


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    """Mean of per-image values with bootstrap weights (rows of a 2-D array are images)."""
    values = np.asarray(values, dtype=np.float64)
    total = weights.sum() * (values[0].size if values.ndim > 1 else 1)
    return float((weights @ values.reshape(len(values), -1)).sum() / total) if total > 0 else float("nan")
