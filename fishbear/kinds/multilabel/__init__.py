"""Multi-label classification (Planet tiles): any number of tags per image, a sigmoid per tag.

Targets are tag index tuples on disk and multi-hot vectors in a batch; a tag is predicted above
its threshold (one global threshold, or one per tag tuned on validation and saved in the
checkpoint). On disk it is Planet's layout: ``train-jpg/<name>.jpg`` and ``train_v2.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fishbear.kinds.base import Kind
from fishbear.kinds.meta import KindSettings


@dataclass(frozen=True)
class MultiLabelSettings(KindSettings):
    """``threshold``: a tag is predicted from this probability on (fastai's ``accuracy_thresh``
    default); ``beta``: the F-beta reported and tuned for (Planet's Kaggle metric is F2);
    ``thresholds``: one per tag, tuned on validation after fitting (None: ``threshold`` for all)."""

    threshold: float = 0.2
    beta: float = 2.0
    thresholds: tuple[float, ...] | None = None

    def cuts(self, tags: int) -> np.ndarray:
        """The probability each tag is predicted from."""
        return np.asarray(self.thresholds if self.thresholds else [self.threshold] * tags, dtype=np.float64)


class MultiLabel(Kind):
    name: ClassVar[str] = "multilabel"
    package: ClassVar[str] = __name__
    reviews_tags: ClassVar[bool] = True
    settings_type: ClassVar[type[KindSettings]] = MultiLabelSettings

    def pack_target(self, sample: Any, scale: float) -> np.ndarray:
        return np.asarray(sorted(int(i) for i in sample.target), dtype=np.int64)

    def unpack_target(self, value: Any) -> tuple[int, ...]:
        return tuple(int(i) for i in np.asarray(value).reshape(-1))

    def target(self, sample: Any, out: dict[str, Any], num_classes: int) -> torch.Tensor:
        hot = torch.zeros(num_classes, dtype=torch.float32)
        hot[list(sample.target)] = 1.0
        return hot

    def label_indices(self, sample: Any) -> tuple[int, ...]:
        return tuple(int(i) for i in sample.target)

    def write_shapes(self, source: Any, root: Path) -> None:
        """Planet's layout: ``train-jpg/<name>.jpg`` and ``train_v2.csv`` (``image_name,tags``, the
        tags of the shapes present separated by spaces)."""
        from PIL import Image

        from fishbear.data.shapes import flat_scenes

        (root / "train-jpg").mkdir(parents=True)
        rows = ["image_name,tags"]
        for name, scene in flat_scenes(source):
            Image.fromarray(scene.image).save(root / "train-jpg" / f"{name}.jpg", quality=source.jpeg_quality)
            rows.append(f"{name},{' '.join(sorted({shape.kind for shape in scene.shapes}))}")
        (root / "train_v2.csv").write_text("\n".join(rows) + "\n")

    has_probabilities: ClassVar[bool] = True

    def entropy(self, outputs: Any) -> Any:  # each tag a yes/no question
        logits = outputs.float()
        p = logits.sigmoid()
        return (torch.nn.functional.softplus(logits) - p * logits).mean()

    def mirror_refusal(self, meta: Any) -> None:
        return None

    def merge_views(self, outputs: Any, other: Any) -> Any:
        """The logit of each tag's mean probability."""
        return torch.logit(((outputs.float().sigmoid() + other.float().sigmoid()) / 2).clamp(1e-7, 1 - 1e-7))

    mixes: ClassVar[bool] = True

    def soft_target(self, target: Any, num_classes: int) -> Any:
        return target.float()

    def pseudo_targets(self, outputs: Any, threshold: float) -> tuple[Any, Any]:
        p = outputs.float().sigmoid()
        return (p >= 0.5).float(), ((p >= threshold) | (p <= 1.0 - threshold)).float()

    def labelled_targets(self, target: Any, settings: Any) -> tuple[Any, Any]:
        return target.float(), torch.ones_like(target, dtype=torch.float32)

    def fit_loss(self, outputs: Any, target: Any, weight: Any) -> Any:
        losses = torch.nn.functional.binary_cross_entropy_with_logits(outputs.float(), target, reduction="none")
        return (losses * weight).sum() / weight.sum().clamp_min(1.0)

    def doubt(self, outputs: Any) -> Any:  # the most doubtful tag of each picture
        return (1.0 - (2.0 * outputs.float().sigmoid() - 1.0).abs()).max(dim=1).values

    def predictions(self, outputs: Any) -> Any:
        return outputs.float().sigmoid()

    export_outputs: ClassVar[tuple[str, ...]] = ("probabilities",)
    export_reading: ClassVar[str] = "tags"

    def exported(self, outputs: Any, original_size: Any, meta: Any) -> tuple[Any, ...]:
        return (self.predictions(outputs),)  # the tags from their thresholds (the meta's settings), outside

    def headline(self, answers: list[dict[str, Any]], samples: list[Any], classes: list[str]) -> tuple[str, Any, bool]:
        """The share of tag decisions that are right, per picture."""
        right = [np.mean([(c in a["tags"]) == (i in s.target) for i, c in enumerate(classes)])
                 for a, s in zip(answers, samples)]
        return "tag accuracy", np.array(right, float), True

    def interpret(self, predictions: Any, sizes: list[tuple[int, int]], meta: Any) -> list[dict[str, Any]]:
        classes = list(meta.classes)
        cut = meta.settings.cuts(len(classes))
        out = []
        for row in predictions.cpu().numpy():
            tags = [c for c, p, t in zip(classes, row, cut) if p > t]
            out.append({
                "tags": tags, "probabilities": {c: float(p) for c, p in zip(classes, row)},
                "summary": " ".join(f"{c}:{p:.2f}" for c, p, t in zip(classes, row, cut) if p > t) or "(no tag)",
                "columns": {"tags": " ".join(tags), **{f"p_{c}": f"{p:.6f}" for c, p in zip(classes, row)}},
            })
        return out


KIND = MultiLabel()
