"""Figures shared by the run folder and TensorBoard (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fishbear.core.atomic import printable  # noqa: E402

BoxSet = tuple[np.ndarray, str, Sequence[str]]  # N x 4 xyxy pixels, colour, a caption per box


def image_grid(images: np.ndarray, titles: Sequence[str], columns: int = 8, size: float = 1.6,
               points: Sequence[Sequence[tuple[np.ndarray, str]]] | None = None,
               boxes: Sequence[Sequence[BoxSet]] | None = None, title: str | None = None) -> Figure:
    """``images`` N x H x W x 3 in [0, 1]; one title over each (the label as the model sees it).
    ``points``: per image, ``(K x 2 pixel coordinates, colour)`` pairs drawn as markers;
    ``boxes``: per image, ``(N x 4 xyxy pixels, colour, captions)`` drawn as outlines; ``title``:
    one line over the whole grid.

    The layout is computed in inches (room for the captions' lines and the title) rather than by
    ``tight_layout``, which measured 0.14 s of a 16-image grid's 0.4 s (drawing every text to
    find its extent), a fixed cost of every run's first batch picture and report."""
    n = len(images)
    columns = max(1, min(columns, n))
    rows = int(np.ceil(n / columns))
    lines = max([str(t).count("\n") + 1 for t in titles] or [1])
    caption = 0.1 + 0.14 * lines  # inches over each image
    heading = 0.3 if title else 0.0
    height = rows * (size + caption) + heading
    fig, axes = plt.subplots(rows, columns, figsize=(columns * size, height), squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02 / height, top=1 - (caption + heading) / height,
                        wspace=0.04, hspace=caption / size)
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 0.06 / height, va="top")
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image, title) in enumerate(zip(axes.flat, images, titles)):
        ax.imshow(np.clip(image, 0, 1))
        ax.set_title(printable(str(title)), fontsize=8)  # a class folder named in another encoding
        for coords, colour in (points[i] if points else []):
            coords = np.asarray(coords).reshape(-1, 2)
            ax.scatter(coords[:, 0], coords[:, 1], s=36, c=colour, marker="x" if colour == "red" else "o",
                       linewidths=2, edgecolors="white" if colour != "red" else None)
        for coords, colour, captions in (boxes[i] if boxes else []):
            for (x0, y0, x1, y1), caption in zip(np.asarray(coords).reshape(-1, 4), captions):
                ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.5))
                if caption:
                    ax.text(x0, y0, caption, fontsize=6, color="black", va="bottom",
                            bbox={"facecolor": colour, "alpha": 0.7, "pad": 0.5, "linewidth": 0})
        if points or boxes:
            ax.set_xlim(-0.5, image.shape[1] - 0.5)
            ax.set_ylim(image.shape[0] - 0.5, -0.5)
    return fig


def confusion_matrix_figure(matrix: np.ndarray, classes: Sequence[str], normalize: bool = False) -> Figure:
    """Counts in each cell, rows = actual, columns = predicted (sklearn's convention)."""
    matrix = np.asarray(matrix)
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    n = len(classes)
    side = max(4.0, 0.55 * n + 2.5)
    fig, ax = plt.subplots(figsize=(side, side))
    im = ax.imshow(shown, cmap="Blues")
    ax.set_xticks(range(n), labels=classes, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), labels=classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Confusion matrix" + (" (row-normalised)" if normalize else ""))
    threshold = shown.max() / 2 if shown.size else 0
    if n <= 40:
        for i in range(n):
            for j in range(n):
                text = f"{shown[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if shown[i, j] > threshold else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def pr_curve_figure(curves: dict[str, np.ndarray], title: str) -> Figure:
    """Precision at each of the COCO evaluation's 101 recall points, one line per class (recall a
    detector never reaches has precision 0; a class without true boxes is -1 throughout and left out)."""
    recall = np.linspace(0, 1, 101)
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, precision in curves.items():
        precision = np.asarray(precision)
        reached = precision > -1
        ax.plot(recall[reached], precision[reached], label=f"{name} (AP {precision[reached].mean() if reached.any() else 0:.2f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def palette(num_classes: int, void_index: int | None = None) -> np.ndarray:
    """Distinct RGB colours (uint8, num_classes x 3) for class indices; void is black."""
    cmap = plt.get_cmap("tab20" if num_classes <= 20 else "hsv")
    colours = np.array([cmap(i % 20 if num_classes <= 20 else i / num_classes)[:3] for i in range(num_classes)])
    colours = (colours * 255).round().astype(np.uint8)
    if void_index is not None and 0 <= void_index < num_classes:
        colours[void_index] = 0
    return colours


def overlay_mask(image: np.ndarray, mask: np.ndarray, colours: np.ndarray, alpha: float = 0.55,
                 void_index: int | None = None) -> np.ndarray:
    """An H x W x 3 image in [0, 1] with each class painted in its colour; void pixels stay as they are."""
    painted = colours[np.clip(mask, 0, len(colours) - 1)].astype(np.float32) / 255.0
    weight = np.full(mask.shape + (1,), alpha, dtype=np.float32)
    if void_index is not None:
        weight[mask == void_index] = 0.0
    return np.clip(image * (1 - weight) + painted * weight, 0, 1)


def pairs_figure(pairs: list[dict[str, Any]]) -> Figure:
    """Each near-copy pair side by side (held-out image left, its copy right) with the distance."""
    from PIL import Image

    from fishbear.core.decoding import as_rgb

    images, titles = [], []
    for pair in pairs:
        for key, side in (("kept", "kept_split"), ("copy", "copy_split")):
            with Image.open(pair[key]) as opened:
                image = Image.fromarray(as_rgb(opened)).resize((128, 128))
                images.append(np.asarray(image, dtype=np.float32) / 255.0)
            titles.append(f"{pair[side]}: {Path(pair[key]).name[:18]}" + (f"\n{pair['distance']} bits" if key == "copy" else ""))
    return image_grid(np.stack(images), titles, columns=4, size=2.2,
                      title="Closest images across splits (perceptual hash)")


def figure_png(fig: Figure) -> bytes:
    """A figure as PNG bytes; the figure is released."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def save_figure(fig: Figure, path: str) -> None:
    """Save a PNG atomically and release the figure."""
    from fishbear.core.atomic import atomic_write

    data = figure_png(fig)
    atomic_write(path, lambda handle: handle.write(data))
