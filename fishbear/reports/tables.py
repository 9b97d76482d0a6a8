"""What every kind's report section is made with: Markdown tables and numbers, the test files
behind result rows, the highest losses, and test images drawn by the task.

Kept apart from ``report.py`` (which assembles the whole report from the kinds' sections), so a
kind's ``report.py`` imports these without importing the registry of kinds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fishbear.reports.plots import save_figure


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def file_of(samples: list[Path], index: Any) -> str:
    """The test file behind a result row's dataset ``index`` (the index itself when unknown)."""
    index = int(index)
    return str(samples[index]) if index < len(samples) else str(index)


def highest_losses(results: dict[str, Any], k: int) -> list[int]:
    return [int(i) for i in results["loss"].numpy().argsort()[::-1][:k]]


def worst(results: dict[str, Any], samples: list[Path], k: int = 9) -> list[dict[str, Any]]:
    """The ``k`` test images with the highest loss, by file."""
    return [{"file": file_of(samples, results["index"][i]), "loss": float(results["loss"][i])}
            for i in highest_losses(results, k)]


def model_size(task: Any) -> tuple[int, int]:
    """The ``(height, width)`` the task's network was trained at."""
    from fishbear.core.geometry import as_hw

    meta = getattr(task, "meta", None)
    return as_hw(meta.image_size if meta is not None and meta.image_size else 128)


def shown_images(results: dict[str, Any], samples: list[Path], size: tuple[int, int], k: int,
                 order: list[int] | None = None) -> tuple[np.ndarray, list[int]]:
    """The first ``k`` test images, resized to ``size`` (height, width) as the model saw them,
    and their positions in the results; empty when the files are gone."""
    from PIL import Image

    from fishbear.core.decoding import as_rgb

    shown, rows = [], []
    for row in (order if order is not None else range(len(results["index"])))[:k]:
        path = Path(file_of(samples, results["index"][row]))
        if not path.is_file():
            return np.zeros((0, *size, 3), dtype=np.float32), []
        with Image.open(path) as image:  # as the model read it: upright, 16-bit and float greys scaled
            resized = Image.fromarray(as_rgb(image)).resize((size[1], size[0]), Image.BILINEAR)
            shown.append(np.asarray(resized, dtype=np.float32) / 255.0)
        rows.append(row)
    return np.stack(shown) if shown else np.zeros((0, *size, 3), dtype=np.float32), rows


def rows_of(values: Any, rows: list[int]) -> Any:
    """Rows of a tensor, or of a list (boxes: one dict per image)."""
    return [values[i] for i in rows] if isinstance(values, list) else values[rows]


def sample_figure(results: dict[str, Any], samples: list[Path], task: Any, size: tuple[int, int], run_dir: Path,
                  filename: str, k: int = 8, order: list[int] | None = None) -> dict[str, str]:
    """Test images (the first ``k``, or of ``order``) with targets and predictions drawn by the
    task; ``{}`` when there is nothing to draw."""
    if task is None:
        return {}
    images, rows = shown_images(results, samples, size, k, order)
    if not rows:
        return {}
    figure = task.draw(images, rows_of(results["target"], rows), rows_of(results["prediction"], rows),
                       results["size"][rows])
    save_figure(figure, str(run_dir / filename))
    return {filename.removesuffix(".png"): filename}
