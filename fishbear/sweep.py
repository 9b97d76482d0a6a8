"""After a sweep (``-m``), one table of every run's overrides and test metrics, best first.

A Hydra callback, so it works with any launcher: it reads what each run left in its folder
(``.hydra/overrides.yaml`` and ``report.json``) rather than holding state across jobs.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fishbear.io import atomic_write_text

log = logging.getLogger(__name__)


def _overrides(run_dir: Path) -> dict[str, str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(path.read_text()) if path.is_file() else []
    out = {}
    for item in items or []:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def collect_runs(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per run folder of the sweep that wrote a report, best first by its monitor."""
    import json

    rows = []
    for report_path in sorted(Path(sweep_dir).glob("*/report.json")):
        report = json.loads(report_path.read_text())
        rows.append({
            "run": report_path.parent.name,
            "overrides": _overrides(report_path.parent),
            "metrics": report.get("metrics", {}),
            "monitor": report.get("monitor", {}),
        })
    failed = [p.name for p in sorted(Path(sweep_dir).iterdir()) if p.is_dir() and not p.name.startswith(".")
              and (p / ".hydra").is_dir() and not (p / "report.json").is_file()]
    for name in failed:
        rows.append({"run": name, "overrides": _overrides(Path(sweep_dir) / name), "metrics": {}, "monitor": {},
                     "failed": True})

    def rank(row: dict[str, Any]) -> tuple:
        monitor = row.get("monitor") or {}
        value = row["metrics"].get(monitor.get("metric", ""))
        if value is None:
            return (1, 0.0)
        return (0, -value if monitor.get("mode", "max") == "max" else value)

    return sorted(rows, key=rank)


def summary_tables(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """CSV and Markdown texts of the same table."""
    keys = sorted({k for r in rows for k in r["overrides"]})
    varying = [k for k in keys if len({r["overrides"].get(k) for r in rows}) > 1]
    keys = varying + [k for k in keys if k not in varying]
    metrics = sorted({m for r in rows for m in r["metrics"]})
    header = ["rank", "run", *keys, *metrics]
    table = []
    for i, row in enumerate(rows, start=1):
        values = [f"{row['metrics'][m]:.4f}" if m in row["metrics"] else ("failed" if row.get("failed") else "")
                  for m in metrics]
        table.append([str(i), row["run"], *[row["overrides"].get(k, "") for k in keys], *values])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(table)
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in table]
    return buffer.getvalue(), "\n".join(md) + "\n"


def write_summary(sweep_dir: Path) -> Path | None:
    rows = collect_runs(sweep_dir)
    if not rows:
        return None
    csv_text, md_text = summary_tables(rows)
    monitor = next((r["monitor"] for r in rows if r.get("monitor")), {})
    title = f"# Sweep summary ({len(rows)} runs, best first by {monitor.get('metric', '?')})\n\n"
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
