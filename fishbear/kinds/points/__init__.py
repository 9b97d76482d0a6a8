"""Point regression (BIWI head centres): K named points per image, two outputs each.

Targets are K x 2 pixel coordinates on disk and, in a batch, 2K values in [-1, 1] relative to the
transformed image (fastai's convention), so any resize, crop or flip of the image moves them with
it; points pushed out of the frame by a crop keep their coordinates (beyond ±1). Evaluation
resizes the whole frame, so predictions map back to each original image's pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fishbear.core.errors import DataError
from fishbear.core.geometry import as_hw, letterbox
from fishbear.kinds.base import Kind


def points_to_pixels(values: np.ndarray, width: float, height: float) -> np.ndarray:
    """Network outputs in [-1, 1] (N x 2K) as N x K x 2 pixel coordinates of a width x height image."""
    points = np.asarray(values, dtype=np.float64).reshape(len(values), -1, 2)
    return (points + 1) / 2 * np.array([width, height])


class Points(Kind):
    name: ClassVar[str] = "points"
    package: ClassVar[str] = __name__
    model_hint: ClassVar[str] = "model=point_regressor"
    eval_resize: ClassVar[str] = "squish"

    def compose_args(self) -> dict[str, Any]:
        import albumentations as A

        return {"keypoint_params": A.KeypointParams(format="xy", remove_invisible=False)}

    def num_outputs(self, num_classes: int) -> int:
        return 2 * num_classes

    def mirror_refusal(self, meta: Any) -> str | None:
        if len(meta.classes) == 1:
            return None
        return ("tta=true mirrors the picture, and with several points a mirrored left one is a right one (which is which "
                f"is not known for {', '.join(meta.classes)}); leave tta off.")

    def unmirror(self, outputs: Any, width: int) -> Any:
        """x in [-1, 1] of the mirrored picture is -x of the picture itself."""
        sign = torch.ones(outputs.shape[-1], device=outputs.device)
        sign[0::2] = -1
        return outputs * sign

    def pack_target(self, sample: Any, scale: float) -> np.ndarray:
        return (np.asarray(sample.target, dtype=np.float64).reshape(-1, 2) * scale).astype(np.float32)

    def unpack_target(self, value: Any) -> np.ndarray:
        return np.asarray(value, dtype=np.float32).reshape(-1, 2)

    def transform_inputs(self, sample: Any, image: np.ndarray, num_classes: int) -> dict[str, Any]:
        points = np.asarray(sample.target, dtype=np.float32).reshape(-1, 2)
        if len(points) != num_classes:
            raise DataError(f"{sample.image} has {len(points)} point(s), the dataset names {num_classes}.")
        return {"keypoints": points}

    def target(self, sample: Any, out: dict[str, Any], num_classes: int) -> torch.Tensor:
        height, width = out["image"].shape[-2:]
        points = torch.as_tensor(np.asarray(out["keypoints"], dtype=np.float32)).reshape(-1, 2)
        scale = torch.tensor([width, height], dtype=torch.float32)
        return (points / scale * 2 - 1).reshape(-1)

    def write_shapes(self, source: Any, root: Path) -> None:
        """A star and up to ``source.distractors`` other shapes per image; ``points.csv`` gives the
        star's centre in pixels (``image,x1,y1``): the model must find the star, not any shape."""
        from PIL import Image

        from fishbear.data.shapes import SHAPE_KINDS, render_scene

        (root / "images").mkdir(parents=True)
        rows = ["image,x1,y1"]
        others = [k for k in SHAPE_KINDS if k != "star"]
        for index in range(source.total_flat()):
            rng = source.rng("train", index)
            kinds = ["star", *rng.choice(others, size=int(rng.integers(0, source.distractors + 1)), replace=False)]
            rng.shuffle(kinds)
            scene = render_scene(rng, source.image_size, kinds, 0.12, 0.22)
            star = next(shape for shape in scene.shapes if shape.kind == "star")
            name = f"shapes_{index:05d}.jpg"
            Image.fromarray(scene.image).save(root / "images" / name, quality=source.jpeg_quality)
            rows.append(f"{name},{star.cx:.2f},{star.cy:.2f}")
        (root / "points.csv").write_text("\n".join(rows) + "\n")

    export_outputs: ClassVar[tuple[str, ...]] = ("points",)
    export_reading: ClassVar[str] = "coordinates"
    parity_tolerance: ClassVar[float] = 0.05  # pixels of the original picture

    def headline(self, answers: list[dict[str, Any]], samples: list[Any], classes: list[str]) -> tuple[str, Any, bool]:
        distances = [np.mean(np.linalg.norm(np.array([a["points"][c] for c in classes]) - np.asarray(s.target, float), axis=1))
                     for a, s in zip(answers, samples)]
        return "mean distance (px)", np.array(distances, float), False

    def exported(self, outputs: Any, original_size: Any, meta: Any) -> tuple[Any, ...]:
        """N x K x 2 coordinates in pixels of each original picture (the letterbox undone), as
        :meth:`interpret` computes them."""
        points = outputs.float().flatten(1).unflatten(1, (-1, 2))  # not len(): export keeps the batch axis
        size = original_size.float().flip(1)[:, None, :]  # N x 1 x (width, height)
        if meta.resize != "pad":
            return ((points + 1) / 2 * size,)
        model_h, model_w = as_hw(meta.image_size)
        model = torch.tensor([model_w, model_h], dtype=torch.float32, device=points.device)
        factor = torch.minimum(model_h / size[..., 1], model_w / size[..., 0])[..., None]  # N x 1 x 1
        offset = (model - size * factor) / 2
        return (((points + 1) / 2 * model - offset) / factor,)

    def interpret(self, predictions: Any, sizes: list[tuple[int, int]], meta: Any) -> list[dict[str, Any]]:
        """Coordinates in pixels of each original image (the whole frame was resized, not cropped)."""
        names = list(meta.classes)
        out = []
        for row, (height, width) in zip(predictions.cpu().numpy(), sizes):
            box = letterbox(meta.resize, meta.image_size, height, width)
            if box is None:
                points = points_to_pixels(row[None], width, height)[0]
            else:  # model pixels, then the letterbox undone
                model_h, model_w = as_hw(meta.image_size)
                factor, left, top = box
                points = (points_to_pixels(row[None], model_w, model_h)[0] - np.array([left, top])) / factor
            out.append({
                "points": {name: (float(x), float(y)) for name, (x, y) in zip(names, points)},
                "summary": "  ".join(f"{name} ({x:.1f}, {y:.1f})" for name, (x, y) in zip(names, points)),
                "columns": {key: f"{value:.2f}" for name, (x, y) in zip(names, points)
                            for key, value in ((f"{name}_x", x), (f"{name}_y", y))},
            })
        return out


KIND = Points()
