"""Image regression (fastai's ``RegressionBlock``): one or more numbers per image, such as the
number of fish in a frame, an age or a length.

Targets are float vectors, one value per name (the catalog's ``classes`` name the values). The
network predicts each value standardised by the training split's mean and standard deviation
(kept in the checkpoint), so values of any scale train alike; with the Poisson loss (for counts)
it predicts the log of the rate instead. Evaluation resizes the whole frame: a count is of the
whole image, and a centre crop could cut objects away. On disk: a CSV ``image,value[,value...]``
(``fishbear.formats.values_csv.ValuesCsvReader``), or counts of the boxes of any box dataset
(``relabel.BoxCounts``).
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
class RegressSettings(KindSettings):
    """``regress_loss``: what the network was trained for (``poisson``: it predicts the log of the
    expected count); ``value_mean`` / ``value_std``: the training split's scale of each value,
    which the network learns in (None: the values as they come)."""

    regress_loss: str = "mse"
    value_mean: tuple[float, ...] | None = None
    value_std: tuple[float, ...] | None = None


class Regress(Kind):
    name: ClassVar[str] = "regress"
    package: ClassVar[str] = __name__
    model_hint: ClassVar[str] = "a network with one output vector per image, such as model=convnet or model=resnet34"
    eval_resize: ClassVar[str] = "squish"
    settings_type: ClassVar[type[KindSettings]] = RegressSettings

    def mirror_refusal(self, meta: Any) -> None:
        """Values that a mirror leaves alone (counts, sizes, ages) are averaged; a value a mirror changes
        (a yaw angle, a left-right offset) is not one for tta."""
        return None

    def pack_target(self, sample: Any, scale: float) -> np.ndarray:
        return np.asarray(sample.target, dtype=np.float32).reshape(-1)  # values, not pixels: no scale

    def unpack_target(self, value: Any) -> np.ndarray:
        return np.asarray(value, dtype=np.float32).reshape(-1)

    def target(self, sample: Any, out: dict[str, Any], num_classes: int) -> torch.Tensor:
        return torch.as_tensor(np.asarray(sample.target, dtype=np.float32).reshape(-1))

    def data_settings(self, datamodule: Any) -> dict[str, Any]:
        """The training split's mean and standard deviation of each value: the standardisation the
        network learns in, and the baseline of predicting the mean."""
        values = np.stack([np.asarray(s.target, dtype=np.float64).reshape(-1) for s in datamodule.samples("train")])
        std = values.std(0)
        return {"value_mean": tuple(values.mean(0).tolist()), "value_std": tuple(np.where(std > 1e-8, std, 1.0).tolist())}

    def write_shapes(self, source: Any, root: Path) -> None:
        """How many shapes are in the picture: ``images/<name>.jpg`` with 0 to ``source.max_shapes``
        shapes each (overlaps allowed, as fish overlap) and ``counts.csv`` (``image,count``)."""
        from PIL import Image

        from fishbear.data.shapes import SHAPE_KINDS, render_scene

        (root / "images").mkdir(parents=True)
        rows = ["image,count"]
        for index in range(source.total_flat()):
            rng = source.rng("train", index)
            count = int(rng.integers(0, source.max_shapes + 1))
            kinds = [str(k) for k in rng.choice(SHAPE_KINDS, size=count, replace=True)]
            scene = render_scene(rng, source.image_size, kinds, 0.1, 0.17)
            name = f"shapes_{index:05d}.jpg"
            Image.fromarray(scene.image).save(root / "images" / name, quality=source.jpeg_quality)
            rows.append(f"{name},{count}")
        (root / "counts.csv").write_text("\n".join(rows) + "\n")

    def predictions(self, outputs: Any) -> Any:
        """Raw network outputs (standardised values, or log-rates); :func:`values` reads them."""
        return outputs.float()

    export_outputs: ClassVar[tuple[str, ...]] = ("values",)
    export_reading: ClassVar[str] = "values"

    parity_tolerance: ClassVar[float] = 1e-3  # values in their own units (counts, ages): a thousandth

    def exported(self, outputs: Any, original_size: Any, meta: Any) -> tuple[Any, ...]:
        return (values(outputs, meta.settings),)

    def headline(self, answers: list[dict[str, Any]], samples: list[Any], classes: list[str]) -> tuple[str, Any, bool]:
        errors = [np.mean(np.abs(np.array([a["values"][c] for c in classes]) - np.asarray(s.target, float).reshape(-1)))
                  for a, s in zip(answers, samples)]
        return "mean absolute error", np.array(errors, float), False

    def interpret(self, predictions: Any, sizes: list[tuple[int, int]], meta: Any) -> list[dict[str, Any]]:
        names = list(meta.classes)
        out = []
        for row in values(predictions, meta.settings).cpu().numpy():
            out.append({
                "values": {name: float(v) for name, v in zip(names, row)},
                "summary": "  ".join(f"{name} {v:.3f}" for name, v in zip(names, row)),
                "columns": {name: f"{v:.4f}" for name, v in zip(names, row)},
            })
        return out


def values(outputs: torch.Tensor, settings: RegressSettings) -> torch.Tensor:
    """Network outputs as values in the targets' units (N x values)."""
    outputs = outputs.float().flatten(1)  # not len(): export keeps the batch axis
    if settings.regress_loss == "poisson":
        return outputs.exp()
    mean = torch.as_tensor(settings.value_mean or 0.0, dtype=torch.float32, device=outputs.device)
    std = torch.as_tensor(settings.value_std or 1.0, dtype=torch.float32, device=outputs.device)
    return outputs * std + mean


KIND = Regress()
