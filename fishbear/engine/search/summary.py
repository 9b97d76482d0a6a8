"""After a sweep (``-m``), one table of every run's overrides and metrics, best first by the
validation figure each run was checkpointed by (its monitor's best value): the test figures are
shown beside it and never used to rank, so the winner's test figure stays a fair estimate. Runs
that repeat a setting with another seed or fold are aggregated into one row with its spread.

A Hydra callback, so it works with any launcher: it reads what each run left in its folder
(``.hydra/overrides.yaml`` and ``report.json``) rather than holding state across jobs.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fishbear.core.atomic import atomic_write_text
from fishbear.engine.search.sweeper import LINK_KEY, PRUNED_FILE

log = logging.getLogger(__name__)


def _overrides(run_dir: Path) -> dict[str, str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(path.read_text()) if path.is_file() else []
    out = {}
    for item in items or []:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if not key.startswith(f"{LINK_KEY}."):  # a search trial's link to its study, not a setting
            out[key] = value
    return out


# overrides that repeat an experiment rather than change it: their runs are one row
REPLICATE_KEYS = ("seed", "data.fold", "data.split_seed")


def _validation_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The run's best validation value under its own name (``val/loss``), beside the test metrics."""
    validation = report.get("validation") or {}
    if validation.get("metric") and validation.get("best") is not None:
        return {str(validation["metric"]): float(validation["best"])}
    return {}


def collect_runs(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per run folder of the sweep that wrote a report, best first by its validation
    monitor (rows without one last)."""
    import json

    rows = []
    for report_path in sorted(Path(sweep_dir).glob("*/report.json")):
        report = json.loads(report_path.read_text())
        validation = report.get("validation") or {}
        rows.append({
            "run": report_path.parent.name,
            "overrides": _overrides(report_path.parent),
            "metrics": {**_validation_metrics(report), **report.get("metrics", {})},
            "intervals": report.get("intervals", {}),
            "monitor": {"metric": validation.get("metric"), "mode": validation.get("mode")} if validation else {},
        })
    failed = [p.name for p in sorted(Path(sweep_dir).iterdir()) if p.is_dir() and not p.name.startswith(".")
              and (p / ".hydra").is_dir() and not (p / "report.json").is_file()]
    for name in failed:
        rows.append({"run": name, "overrides": _overrides(Path(sweep_dir) / name), "metrics": {}, "monitor": {},
                     "failed": "pruned" if (Path(sweep_dir) / name / PRUNED_FILE).is_file() else "failed"})
    return sorted(rows, key=_rank)


def _rank(row: dict[str, Any]) -> tuple:
    """By the validation monitor (``val/...``), never a test figure."""
    monitor = row.get("monitor") or {}
    value = row["metrics"].get(monitor.get("metric") or "")
    if value is None:
        return (1, 0.0)
    return (0, -value if monitor.get("mode", "max") == "max" else value)


def aggregate(rows: list[dict[str, Any]], level: float = 0.95) -> list[dict[str, Any]]:
    """Runs whose overrides differ only in ``REPLICATE_KEYS`` (seeds, folds) become one row: per
    metric the mean, the standard deviation over runs and a t interval of the mean. A single run
    keeps its report's bootstrap interval. Rows best first; ``vs_best`` says whether a row's
    interval overlaps the best row's (then the two are not distinguishable on this evidence)."""
    from scipy.stats import t

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("failed"):
            continue
        setting = tuple(sorted((k, v) for k, v in row["overrides"].items() if k not in REPLICATE_KEYS))
        groups.setdefault(setting, []).append(row)
    out = []
    for members in groups.values():
        first = members[0]
        runs = ",".join(sorted((r["run"] for r in members), key=lambda n: (len(n), n)))
        entry: dict[str, Any] = {"run": runs, "runs": len(members),
                                 "overrides": {k: v for k, v in first["overrides"].items() if k not in REPLICATE_KEYS},
                                 "replicates": {k: ",".join(sorted({r["overrides"][k] for r in members if k in r["overrides"]}))
                                                for k in REPLICATE_KEYS if any(k in r["overrides"] for r in members)},
                                 "monitor": first["monitor"], "metrics": {}, "std": {}, "intervals": {}}
        for name in sorted({m for r in members for m in r["metrics"]}):
            values = np.array([r["metrics"][name] for r in members if name in r["metrics"]], dtype=np.float64)
            entry["metrics"][name] = float(values.mean())
            if len(values) > 1:
                std = float(values.std(ddof=1))
                half = float(t.ppf(0.5 + level / 2, len(values) - 1)) * std / np.sqrt(len(values))
                entry["std"][name] = std
                entry["intervals"][name] = {"low": float(values.mean() - half), "high": float(values.mean() + half),
                                            "method": f"t interval of the mean of {len(values)} runs"}
            elif name in first.get("intervals", {}):
                entry["intervals"][name] = first["intervals"][name]
        out.append(entry)
    out.sort(key=_rank)
    _mark_distinguishable(out)
    failed = [{**row, "runs": 1, "std": {}, "intervals": {}, "replicates": {}, "vs_best": row["failed"]}
              for row in rows if row.get("failed")]
    return out + failed


def _mark_distinguishable(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    metric = (rows[0].get("monitor") or {}).get("metric", "")
    best = rows[0]["intervals"].get(metric)
    rows[0]["vs_best"] = "best"
    for row in rows[1:]:
        mine = row["intervals"].get(metric)
        if best is None or mine is None:
            row["vs_best"] = "no interval"
        elif mine["high"] >= best["low"] and best["high"] >= mine["low"]:
            row["vs_best"] = "not distinguishable"
        else:
            row["vs_best"] = "worse"


def _cell(row: dict[str, Any], name: str) -> str:
    if name not in row["metrics"]:
        return row.get("failed") or ""
    text = f"{row['metrics'][name]:.4f}"
    if name in row["std"]:
        text += f" ± {row['std'][name]:.4f}"
    found = row["intervals"].get(name)
    return text + (f" [{found['low']:.4f}, {found['high']:.4f}]" if found else "")


def summary_tables(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """CSV (one column per figure) and Markdown (mean ± std [95% interval]) of the aggregated rows."""
    keys = sorted({k for r in rows for k in r["overrides"]})
    varying = [k for k in keys if len({r["overrides"].get(k) for r in rows}) > 1]
    keys = varying + [k for k in keys if k not in varying]
    replicated = sorted({k for r in rows for k in r.get("replicates", {})})
    metrics = sorted({m for r in rows for m in r["metrics"]})
    csv_header = ["rank", "run", "runs", *keys, *replicated, "vs_best"]
    md_header = list(csv_header)
    for m in metrics:
        csv_header += [m, f"{m} std", f"{m} low", f"{m} high"]
        md_header.append(f"{m} (mean ± std [95%])")
    csv_rows, md_rows = [], []
    for i, row in enumerate(rows, start=1):
        common = [str(i), row["run"], str(row.get("runs", 1)), *[row["overrides"].get(k, "") for k in keys],
                  *[row.get("replicates", {}).get(k, "") for k in replicated], row.get("vs_best", "")]
        figures = []
        for m in metrics:
            found = row["intervals"].get(m) or {}
            value = row["metrics"].get(m)
            figures += [f"{value:.4f}" if value is not None else (row.get("failed") or ""),
                        f"{row['std'][m]:.4f}" if m in row["std"] else "",
                        f"{found['low']:.4f}" if found else "", f"{found['high']:.4f}" if found else ""]
        csv_rows.append(common + figures)
        md_rows.append(common + [_cell(row, m) for m in metrics])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(csv_header)
    writer.writerows(csv_rows)
    md = ["| " + " | ".join(md_header) + " |", "|" + "---|" * len(md_header)]
    md += ["| " + " | ".join(r) + " |" for r in md_rows]
    return buffer.getvalue(), "\n".join(md) + "\n"


def write_summary(sweep_dir: Path) -> Path | None:
    rows = collect_runs(sweep_dir)
    if not rows:
        return None
    aggregated = aggregate(rows)
    csv_text, md_text = summary_tables(aggregated)
    monitor = next((r["monitor"] for r in rows if r.get("monitor")), {})
    title = (f"# Sweep summary ({len(rows)} runs in {len(aggregated)} rows, best first by validation: "
             f"{monitor.get('metric') or '?'}, each run's best epoch)\n\n"
             "Runs are ranked by the validation figure they were checkpointed by; the test figures beside it took "
             "no part in the choice, so the best row's test figure is a fair estimate for it. "
             "Runs that differ only in seed or fold are one row: mean ± standard deviation over the runs and a "
             "95% t interval of the mean; a single run shows its report's 95% interval for test metrics. "
             "`vs_best`: `not distinguishable` when the row's interval of the validation figure overlaps the best "
             "row's (needs replicates).\n\n")
    atomic_write_text(sweep_dir / "summary.csv", csv_text)
    atomic_write_text(sweep_dir / "summary.md", title + md_text)
    return sweep_dir / "summary.md"


class SweepSummary(Callback):
    def __init__(self) -> None:
        self.sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = self.sweep_dir or Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        path = write_summary(sweep_dir)
        if path is not None:
            print(f"\nSweep summary: {path}\n{path.read_text()}")
