"""The run report: ``report.json`` for programs, ``report.md`` and figures for people.

The common part (metrics, data, config summary, versions, device, timings) is the same for every
task kind; each kind adds its own section (``Kind.section`` and ``Kind.markdown``, in
``fishbear/kinds/<kind>/report.py``), built from the per-image test results the task keeps.
Everything is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fishbear.core.atomic import atomic_write_together, text_writer
from fishbear.core.environment import versions
from fishbear.kinds import get_kind
from fishbear.reports.tables import fmt, table


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
    pairs = (data.get("duplicates") or {}).get("closest_pairs") or []
    if pairs and all(Path(p["kept"]).is_file() and Path(p["copy"]).is_file() for p in pairs[:6]):
        from fishbear.reports.plots import pairs_figure, save_figure

        save_figure(pairs_figure(pairs[:6]), str(run_dir / "duplicates.png"))
        report["data"] = {**data, "duplicates": {**data["duplicates"], "figure": "duplicates.png"}}
    return report


def split_summary(split: dict[str, Any]) -> str:
    """One cell: the strategy, what it split by, and groups or time ranges per split."""
    if not split:
        return "-"
    text = f"{split.get('strategy')} by {split.get('by')}"
    if split.get("folders_on_disk"):
        text = f"folders on disk for {', '.join(split['folders_on_disk'])}; the rest: " + text
    if split.get("folds"):
        text += f", fold {split['fold']} of {split['folds']} held out as {split.get('held_out_as')}"
    if split.get("groups"):
        text += "; groups " + ", ".join(f"{k} {v}" for k, v in split["groups"].items())
    if split.get("order_range"):
        text += "; order " + ", ".join(f"{k} {lo:g}-{hi:g}" for k, (lo, hi) in split["order_range"].items())
        text += f"; {split.get('dropped_at_boundaries', 0)} dropped at boundaries (gap {split.get('gap', 0)})"
    return text


def leakage_markdown(duplicates: dict[str, Any] | None, split: dict[str, Any]) -> list[str]:
    """The report's leakage section: near-copies across splits, exact copies, groups on two sides."""
    if not duplicates:
        return []
    lines = ["## Leakage check", ""]
    copies = duplicates.get("images_with_copy_in_another_split", {})
    rows = [[name, count] for name, count in copies.items()]
    intro = (f"Near-copies across splits ({duplicates['method']}, at most {duplicates['threshold_bits']} bits apart; "
             f"policy `{duplicates['policy']}`, {duplicates.get('dropped_from_train_side', 0)} train-side copies dropped):")
    lines += [intro, "",
              table(["split", "images with a near-copy in an earlier split"], rows or [["-", 0]]), ""]
    pairs = duplicates.get("closest_pairs") or []
    if pairs:
        lines += [table(["kept", "copy", "bits apart"],
                        [[f"`{p['kept_split']}/{Path(p['kept']).name}`", f"`{p['copy_split']}/{Path(p['copy']).name}`",
                          p["distance"]] for p in pairs[:8]]), ""]
    if duplicates.get("figure"):
        lines += [f"![closest pairs]({duplicates['figure']})", ""]
    within = duplicates.get("exact_copies_within_a_split") or []
    labels = duplicates.get("same_file_under_two_labels") or []
    lines += [f"Exact copies within a split: {len(within)}; the same file under two labels: {len(labels)}.", ""]
    for entry in labels[:5]:
        lines += [f"- {', '.join(f'`{Path(f).name}`' for f in entry['files'])}: {' / '.join(entry['labels'])}"]
    shared = split.get("groups_in_two_splits") or []
    if shared:
        lines += ["", "Groups on two sides (folders on disk): " + "; ".join(
            f"{entry['group']} in {', '.join(entry['splits'])}" for entry in shared[:10]), ""]
    return lines + [""]


def render_markdown(report: dict[str, Any]) -> str:
    config = report.get("config", {})
    lines = [f"# Run report: {config.get('choices', {}).get('model', '?')} on {report['data'].get('name', '?')}", ""]
    intervals = report.get("intervals", {})

    def interval(key: str) -> str:
        found = intervals.get(key)
        return f"{found['low']:.4f} - {found['high']:.4f}" if found else "-"

    methods = sorted({found["method"] for found in intervals.values()})
    lines += ["## Test metrics", "", table(["metric", "value", "95% interval"],
                                           [[k, fmt(v), interval(k)] for k, v in report["metrics"].items()]), ""]
    if methods:
        lines += [f"Intervals: {'; '.join(methods)}.", ""]
    review = (report.get("data") or {}).get("review")
    if review:
        lines += [f"The data changed since the review of `{review['review']}`: {review['relabelled']} images relabelled, "
                  f"{review['removed']} removed (under `_removed/`), {review.get('added', 0)} unlabelled ones labelled "
                  f"in, applied {review['applied']}; compare with that run's report.", ""]
    kind = report["kind"]
    if report.get(kind):
        lines += get_kind(kind).markdown(report[kind], report)
    data = report["data"]
    lines += ["## Data", "", table(["", ""], [
        ["dataset", data.get("name")], ["root", f"`{data.get('root')}`"], ["kind", report["kind"]],
        ["classes", ", ".join(report["classes"])], ["images per split", data.get("sizes")],
        ["image size", data.get("image_size")], ["test split", data.get("test_split")],
        ["split", split_summary(data.get("split") or {})],
        ["unreadable files left out", len(data.get("skipped", []))],
        *([["packed from", f"{data['pack']['source']} (max_side {data['pack']['max_side']})"]] if data.get("pack") else [])]),
              ""]
    lines += leakage_markdown(data.get("duplicates"), data.get("split") or {})
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
