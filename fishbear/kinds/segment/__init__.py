"""Semantic segmentation (CamVid): a class per pixel, with a ``void`` code left out of everything.

Targets are mask files; albumentations crops, flips and rotates the mask with the image
(nearest-neighbour, so class indices never blend) and evaluation resizes the whole frame. The
network must output scores per pixel (``model=unet``); predictions become a mask at each input's
own size, which ``predict`` writes as palette PNGs. On disk it is fastai's CamVid layout:
``images/``, ``labels/<stem>_P.png``, ``codes.txt``, ``valid.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fishbear.core.geometry import PAD_MASK, letterbox
from fishbear.data.images import load_mask
from fishbear.kinds.base import Kind
from fishbear.kinds.meta import KindSettings

MASK_CODES: tuple[str, ...] = ("background", "circle", "square", "triangle", "star", "void")


@dataclass(frozen=True)
class SegmentSettings(KindSettings):
    """``void_index``: the code whose pixels are not scored (CamVid's ``Void``), None when none is."""

    void_index: int | None = None


class Segment(Kind):
    name: ClassVar[str] = "segment"
    package: ClassVar[str] = __name__
    settings_type: ClassVar[type[KindSettings]] = SegmentSettings
    written_files: ClassVar[str | None] = "masks"
    output: ClassVar[str] = "dense"
    model_hint: ClassVar[str] = "model=unet"
    eval_resize: ClassVar[str] = "squish"

    def pack_target(self, sample: Any, scale: float) -> bytes:
        """The mask file's class indices as a PNG, resized with its picture (nearest: no new codes)."""
        import io

        from PIL import Image

        with Image.open(sample.target) as opened:
            mask = opened.convert("L") if opened.mode == "1" else opened.copy()
        if scale != 1.0:
            mask = mask.resize((max(1, round(mask.width * scale)), max(1, round(mask.height * scale))), Image.NEAREST)
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(mask).astype(np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue()

    def unpack_target(self, value: Any) -> np.ndarray:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(bytes(value))) as mask:
            return np.asarray(mask)

    def transform_inputs(self, sample: Any, image: np.ndarray, num_classes: int) -> dict[str, Any]:
        if isinstance(sample.target, np.ndarray):  # a packed mask (fishbear.data.pack), checked when packed
            return {"mask": sample.target}
        return {"mask": load_mask(sample.target, sample.image, image.shape[:2], num_classes)}

    def target(self, sample: Any, out: dict[str, Any], num_classes: int) -> torch.Tensor:
        mask = torch.as_tensor(np.asarray(out["mask"]), dtype=torch.long)
        return mask.masked_fill(mask == PAD_MASK, -100)  # letterbox pixels: no class (the task ignores them)

    def write_shapes(self, source: Any, root: Path) -> None:
        """fastai's CamVid layout: ``images/<name>.png``, palette masks ``labels/<name>_P.png``
        (pixel value = line of ``codes.txt``), ``valid.txt``. Each shape's anti-aliased rim is
        ``void``, as CamVid leaves object borders unlabelled."""
        from PIL import Image

        from fishbear.data.shapes import SHAPE_KINDS, flat_scenes
        from fishbear.reports.plots import palette

        assert MASK_CODES[1:-1] == SHAPE_KINDS
        (root / "images").mkdir(parents=True)
        (root / "labels").mkdir()
        code = {name: i for i, name in enumerate(MASK_CODES)}
        colours = palette(len(MASK_CODES), code["void"]).ravel().tolist()
        names = []
        for name, scene in flat_scenes(source):
            mask = np.zeros(scene.image.shape[:2], dtype=np.uint8)
            for shape, inside in zip(scene.shapes, scene.masks):
                mask[inside] = code[shape.kind]
                mask[inside ^ _eroded(inside)] = code["void"]
            Image.fromarray(scene.image).save(root / "images" / f"{name}.png")
            labels = Image.fromarray(mask, mode="P")
            labels.putpalette(colours)
            labels.save(root / "labels" / f"{name}_P.png")
            names.append(name)
        (root / "codes.txt").write_text("\n".join(MASK_CODES) + "\n")
        n_valid = source.valid * len(SHAPE_KINDS)
        (root / "valid.txt").write_text("".join(f"{name}.png\n" for name in names[-n_valid:]))

    has_probabilities: ClassVar[bool] = True

    def entropy(self, outputs: Any) -> Any:  # per pixel, over the classes
        log_p = outputs.float().log_softmax(dim=1)
        return -(log_p.exp() * log_p).sum(dim=1).mean()

    def mirror_refusal(self, meta: Any) -> None:
        return None

    def unmirror(self, outputs: Any, width: int) -> Any:  # per pixel: the mask mirrored back
        return outputs.flip(-1)

    def merge_views(self, outputs: Any, other: Any) -> Any:
        from fishbear.kinds.classify import mean_probability_logits

        return mean_probability_logits(outputs, other)

    def pseudo_targets(self, outputs: Any, threshold: float) -> tuple[Any, Any]:
        sure, target = outputs.float().softmax(dim=1).max(dim=1)
        return target, (sure >= threshold).float()

    def labelled_targets(self, target: Any, settings: Any) -> tuple[Any, Any]:
        """Letterbox pixels (-100) and the void code's are not scored, as in training."""
        scored = target >= 0
        if settings.void_index is not None:
            scored &= target != settings.void_index
        return target.clamp_min(0), scored.float()

    def fit_loss(self, outputs: Any, target: Any, weight: Any) -> Any:
        losses = torch.nn.functional.cross_entropy(outputs.float(), target, reduction="none")
        return (losses * weight).sum() / weight.sum().clamp_min(1.0)

    def doubt(self, outputs: Any) -> Any:  # the mean over the pixels
        return (1.0 - outputs.float().softmax(dim=1).max(dim=1).values).flatten(1).mean(dim=1)

    def predictions(self, outputs: Any) -> Any:
        return outputs.float().softmax(dim=1)

    # scores at the model's size; outside, resized to each picture's size (bilinear, half-pixel
    # centres, as torch's interpolate) and the class with the highest score taken per pixel
    export_outputs: ClassVar[tuple[str, ...]] = ("scores",)
    export_reading: ClassVar[str] = "mask"

    def exported(self, outputs: Any, original_size: Any, meta: Any) -> tuple[Any, ...]:
        return (self.predictions(outputs),)

    def headline(self, answers: list[dict[str, Any]], samples: list[Any], classes: list[str]) -> tuple[str, Any, bool]:
        """Pixel accuracy per picture (every code counts: the void code's pixels are left out by the
        report, which knows it; here both readings are scored alike)."""
        from PIL import Image

        right = []
        for answer, sample in zip(answers, samples):
            if isinstance(sample.target, np.ndarray):
                truth = sample.target
            else:
                with Image.open(sample.target) as mask:
                    truth = np.asarray(mask)
            right.append(float((answer["mask"] == truth).mean()))
        return "pixel accuracy", np.array(right, float), True

    def export_refusal(self, meta: Any) -> str | None:
        if meta.resize == "pad":
            return ("a segmentation model trained with data.resize=pad is not exported yet: its letterbox would be "
                    "cut out of the scores per picture, outside the graph")
        return None

    def export_info(self, meta: Any) -> dict[str, Any]:
        from fishbear.reports.plots import palette

        return {"palette": palette(len(meta.classes), meta.settings.void_index).ravel().tolist(),
                "postprocess": "scores resized to the picture's size (OpenCV INTER_LINEAR on float32), then the "
                               "class of the highest score per pixel"}

    def kept_predictions(self, outputs: Any) -> Any:
        """Class-index masks, not scores: a test set of score maps would not fit in memory."""
        return outputs.argmax(dim=1).to(torch.uint8 if outputs.shape[1] <= 256 else torch.int32)

    def interpret(self, predictions: Any, sizes: list[tuple[int, int]], meta: Any) -> list[dict[str, Any]]:
        """Scores are resized to each original image before the argmax, so the mask has the input's size."""
        import torch.nn.functional as F

        classes = list(meta.classes)
        out = []
        for scores, (height, width) in zip(predictions, sizes):
            box = letterbox(meta.resize, meta.image_size, height, width)
            if box is not None:  # the picture's part of the letterboxed scores
                factor, left, top = box
                scores = scores[:, int(round(top)):int(round(top + height * factor)),
                                int(round(left)):int(round(left + width * factor))]
            scores = F.interpolate(scores[None].float(), size=(int(height), int(width)), mode="bilinear",
                                   align_corners=False)[0]
            mask = scores.argmax(0).cpu().numpy().astype(np.uint8)
            share = np.bincount(mask.ravel(), minlength=len(classes)) / mask.size
            top = np.argsort(share)[::-1][:3]
            out.append({
                "mask": mask,
                "summary": ", ".join(f"{classes[i]} {share[i]:.0%}" for i in top if share[i] > 0),
                "columns": {f"share_{c}": f"{s:.4f}" for c, s in zip(classes, share)},
            })
        return out

    def output_writer(self, meta: Any, folder: Path, files: Any, label_format: str | None = None) -> MaskWriter:
        return MaskWriter(meta, folder, files)


class MaskWriter:
    """Palette PNGs ``<folder>/<key>_P.png`` (``key``: the image's path under the input folder
    without its suffix), colours as in the report (void black), through the command's
    :class:`~fishbear.core.outputs.OutputFiles`."""

    def __init__(self, meta: Any, folder: Path, files: Any) -> None:
        from fishbear.reports.plots import palette

        self.folder = Path(folder)
        self.files = files
        self.count = 0
        self.colours = palette(len(meta.classes), meta.settings.void_index).ravel().tolist()

    def write(self, result: dict[str, Any], key: str, image: Any = None) -> dict[str, str]:
        import io

        from PIL import Image

        picture = Image.fromarray(result["mask"], mode="P")
        picture.putpalette(self.colours)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        path = self.files.write_bytes(self.folder / f"{key}_P.png", buffer.getvalue())
        self.count += 1
        return {"mask": str(path)}

    def note(self) -> str:
        return f"; {self.count} masks in {self.folder}" if self.count else ""


def _eroded(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return inner


KIND = Segment()
