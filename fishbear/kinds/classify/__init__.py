"""Single-label classification: one class per image (shapes, bears, pets, fish or no fish).

Targets are class indices; evaluation centre-crops, as torchvision and fastai do for photographs;
predictions are softmax probabilities. A trained classifier sorts video frames into class folders.
On disk (the embedded shapes data and ``data=folder``) it is an ImageFolder tree.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fishbear.core.errors import DataError
from fishbear.kinds.base import Kind


def mean_probability_logits(outputs: Any, other: Any) -> Any:
    """Scores whose softmax (over dim 1) is the mean of the two outputs' softmaxes."""
    both = torch.stack([outputs.float().log_softmax(dim=1), other.float().log_softmax(dim=1)])
    return torch.logsumexp(both, dim=0) - torch.log(torch.tensor(2.0, device=outputs.device))


class Classify(Kind):
    name: ClassVar[str] = "classify"
    package: ClassVar[str] = __name__
    sorts_frames: ClassVar[bool] = True
    reviews_labels: ClassVar[bool] = True
    proportions: ClassVar[tuple[str, ...]] = ("acc",)

    def pack_target(self, sample: Any, scale: float) -> int:
        return int(sample.target)

    def unpack_target(self, value: Any) -> int:
        return int(value)

    def stratum(self, sample: Any) -> Hashable | None:
        return sample.target

    def label_indices(self, sample: Any) -> tuple[int, ...]:
        return (int(sample.target),)

    def check_catalog(self, catalog: Any, root: Path) -> None:
        """Every class needs training images, and a class with one image cannot be in both
        training and validation."""
        if len(catalog.classes) < 2:
            raise DataError(
                f"{root}: only one class ({', '.join(catalog.classes) or 'none'}) was found; a classifier needs two or "
                "more (it would be right every time, and learn nothing). For 'is it X?', add a folder of "
                "not-X images beside it."
            )
        counts = self.label_counts(catalog)["train"]
        missing = [name for name, n in counts.items() if n == 0]
        if missing:
            raise DataError(
                f"{root}: no training images for class(es) {', '.join(missing)}. "
                "Every class needs training images; add some or remove the class."
            )
        if "valid" not in catalog.splits:
            return
        held = {catalog.classes[s.target] for s in catalog.splits["valid"]}
        alone = [name for name, n in counts.items() if n == 1 and name not in held]
        if alone:
            files = [str(s.image) for s in catalog.splits["train"] if catalog.classes[s.target] in alone][:3]
            raise DataError(
                f"{root}: class(es) {', '.join(alone)} have a single image ({', '.join(files)}), so they can "
                "be in training or validation but not both. Add images of those classes, or remove them."
            )

    def write_shapes(self, source: Any, root: Path) -> None:
        """An ImageFolder tree ``<split>/<shape>/<n>.jpg``, one shape per image."""
        from PIL import Image

        from fishbear.data.shapes import SHAPE_KINDS, SPLITS, render_scene

        for split in SPLITS:
            for shape in SHAPE_KINDS:
                (root / split / shape).mkdir(parents=True, exist_ok=True)
            for index in range(source.count(split) * len(SHAPE_KINDS)):
                shape = SHAPE_KINDS[index % len(SHAPE_KINDS)]
                scene = render_scene(source.rng(split, index), source.image_size, [shape])
                Image.fromarray(scene.image).save(root / split / shape / f"{index:05d}.jpg", quality=source.jpeg_quality)

    has_probabilities: ClassVar[bool] = True

    def entropy(self, outputs: Any) -> Any:
        log_p = outputs.float().log_softmax(dim=1)
        return -(log_p.exp() * log_p).sum(dim=1).mean()

    def mirror_refusal(self, meta: Any) -> None:
        return None

    def merge_views(self, outputs: Any, other: Any) -> Any:
        """The log of the mean probability: its softmax is the two views' mean probabilities."""
        return mean_probability_logits(outputs, other)

    mixes: ClassVar[bool] = True

    def soft_target(self, target: Any, num_classes: int) -> Any:
        return torch.nn.functional.one_hot(target, num_classes).float()

    def pseudo_targets(self, outputs: Any, threshold: float) -> tuple[Any, Any]:
        sure, target = outputs.float().softmax(dim=1).max(dim=1)
        return target, (sure >= threshold).float()

    def labelled_targets(self, target: Any, settings: Any) -> tuple[Any, Any]:
        return target, torch.ones(len(target), device=target.device)

    def fit_loss(self, outputs: Any, target: Any, weight: Any) -> Any:
        """Each class's weighted mean loss, averaged over the classes present: new footage is mostly
        empty frames, and a plain mean would teach the network to call everything empty."""
        losses = torch.nn.functional.cross_entropy(outputs.float(), target, reduction="none") * weight
        per_class = outputs.new_zeros(outputs.shape[1], dtype=torch.float32).index_add_(0, target, losses)
        counts = outputs.new_zeros(outputs.shape[1], dtype=torch.float32).index_add_(0, target, weight)
        present = counts > 0
        return (per_class[present] / counts[present]).mean() if present.any() else losses.sum()

    def doubt(self, outputs: Any) -> Any:
        return 1.0 - outputs.float().softmax(dim=1).max(dim=1).values

    def predictions(self, outputs: Any) -> Any:
        return outputs.float().softmax(dim=1)

    export_outputs: ClassVar[tuple[str, ...]] = ("probabilities",)
    export_reading: ClassVar[str] = "class"

    def exported(self, outputs: Any, original_size: Any, meta: Any) -> tuple[Any, ...]:
        return (self.predictions(outputs),)

    def headline(self, answers: list[dict[str, Any]], samples: list[Any], classes: list[str]) -> tuple[str, Any, bool]:
        return "accuracy", np.array([a["label"] == classes[s.target] for a, s in zip(answers, samples)], float), True

    def interpret(self, predictions: Any, sizes: list[tuple[int, int]], meta: Any) -> list[dict[str, Any]]:
        classes = list(meta.classes)
        out = []
        for row in np.asarray(predictions.cpu().numpy()):
            best = int(row.argmax())
            out.append({
                "label": classes[best], "probability": float(row[best]),
                "probabilities": {c: float(p) for c, p in zip(classes, row)},
                "summary": f"{classes[best]}\t{row[best]:.4f}",
                "columns": {"label": classes[best], "probability": f"{row[best]:.6f}",
                            **{f"p_{c}": f"{p:.6f}" for c, p in zip(classes, row)}},
            })
        return out

    def event_score(self, result: dict[str, Any], target: str) -> float:
        return float(result["probabilities"][target])


KIND = Classify()
