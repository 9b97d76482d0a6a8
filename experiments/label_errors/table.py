"""The planted-error tables of ``experiments/label_errors/README.md`` from ``run.py``'s JSON files:
per dataset and rate, each figure's mean over seeds, its worst seed and a 95% t interval.

    python experiments/label_errors/table.py experiments/label_errors/results_bears.json [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

COLUMNS = [("confident_precision_at_k", "confident: precision@k"), ("loss_precision_at_k", "loss: precision@k"),
           ("confident_precision_at_estimate", "confident: precision at the estimate"),
           ("confident_recall_at_estimate", "confident: recall at the estimate"),
           ("loss_precision_at_estimate", "loss: precision at the estimate"),
           ("loss_recall_at_estimate", "loss: recall at the estimate"),
           ("plain_loss_precision_at_k", "plain loss: precision@k"),
           ("plain_loss_recall_at_estimate", "plain loss: recall at the estimate"),
           ("flagged_precision", "flagged: precision"), ("flagged_recall", "flagged: recall")]


def spread(values: list[float]) -> str:
    """Mean (worst; 95% t interval of the mean)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return f"{v.mean():.3f}"
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return f"{v.mean():.3f} ({v.min():.3f}; {v.mean() - half:.3f}-{v.mean() + half:.3f})"


def main() -> None:
    rows = [row for path in sys.argv[1:] for row in json.loads(Path(path).read_text())]
    def case_of(r: dict) -> tuple:
        return r["dataset"], r.get("flips", "uniform"), r["rate"]

    cases = sorted({case_of(r) for r in rows if r["planted"]})
    chosen = {case: [r for r in rows if case_of(r) == case] for case in cases}
    print("| figure | " + " | ".join(f"{d}, {rate:g} {flips} ({len(chosen[(d, flips, rate)])} seeds)"
                                     for d, flips, rate in cases) + " |")
    print("|---|" + "---|" * len(cases))
    print("| planted (k) | " + " | ".join(f"{chosen[c][0]['planted']} of {chosen[c][0]['pictures']}" for c in cases) + " |")
    print("| estimated wrong | " + " | ".join(" ".join(str(r["estimated"]) for r in chosen[c]) for c in cases) + " |")
    for key, name in COLUMNS:
        print(f"| {name} | " + " | ".join(spread([r[key] for r in chosen[c]]) for c in cases) + " |")


if __name__ == "__main__":
    main()
