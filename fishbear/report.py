"""The run report: ``report.json`` for programs, ``report.md`` and figures for people.

The common part (metrics, data, config summary, versions, device, timings) is the same for every
task kind; each kind adds its own section (``Kind.section`` and ``Kind.markdown``, in
``fishbear/kinds/<kind>/report.py``), built from the per-image test results the task keeps.
Everything is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fishbear.environment import versions
from fishbear.io import atomic_write_together, text_writer
from fishbear.kinds import get_kind
from fishbear.reporting import fmt, table


def build_report(
    *,
    kind: str,
    classes: list[str],
    results: dict[str, Any],
    metrics: dict[str, float],
    run_dir: Path,
    data: dict[str, Any],
    config: dict[str, Any],
    samples: list[Path] | None = None,
    extra: dict[str, Any] | None = None,
    task: Any = None,
) -> dict[str, Any]:
    """Assemble the report and write the kind's figures into ``run_dir``; ``samples`` are the
    test split's image files, in dataset order, so results can name their files."""
    report: dict[str, Any] = {
        "kind": kind,
        "metrics": {k: float(v) for k, v in sorted(metrics.items())},
        "classes": classes,
        "data": data,
        "config": config,
        "versions": versions(),
        **(extra or {}),
    }
    if results:
        report[kind] = get_kind(kind).section(results, classes, run_dir, list(samples or []), task)
    return report


def render_markdown(report: dict[str, Any]) -> str:
    config = report.get("config", {})
    lines = [f"# Run report: {config.get('choices', {}).get('model', '?')} on {report['data'].get('name', '?')}", ""]
    lines += ["## Test metrics", "", table(["metric", "value"], [[k, fmt(v)] for k, v in report["metrics"].items()]), ""]
    kind = report["kind"]
    if report.get(kind):
        lines += get_kind(kind).markdown(report[kind], report)
    data = report["data"]
    lines += ["## Data", "", table(["", ""], [
        ["dataset", data.get("name")], ["root", f"`{data.get('root')}`"], ["kind", report["kind"]],
        ["classes", ", ".join(report["classes"])], ["images per split", data.get("sizes")],
        ["image size", data.get("image_size")], ["test split", data.get("test_split")],
        ["unreadable files left out", len(data.get("skipped", []))]]), ""]
    lines += ["## Run", "", table(["", ""], [
        ["overrides", " ".join(config.get("overrides", [])) or "(none)"],
        ["choices", ", ".join(f"{k}={v}" for k, v in config.get("choices", {}).items())],
        ["epochs", report.get("epochs")], ["best checkpoint", f"`{report.get('best_checkpoint')}`"],
        ["fit time (s)", fmt(report.get("fit_seconds"))], ["wall time (s)", fmt(report.get("wall_seconds"))],
        ["device", report.get("device", {}).get("gpu") or report.get("device", {}).get("cpu")],
        ["precision", config.get("precision")],
        ["versions", ", ".join(f"{k} {v}" for k, v in report["versions"].items())]]), ""]
    return "\n".join(lines)


def write_report(run_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """``report.json`` and ``report.md`` as a pair (a kill never leaves one without the other)."""
    import json

    json_path, md_path = atomic_write_together({
        run_dir / "report.json": text_writer(json.dumps(report, indent=2, sort_keys=False, default=str) + "\n"),
        run_dir / "report.md": text_writer(render_markdown(report)),
    })
    return json_path, md_path
