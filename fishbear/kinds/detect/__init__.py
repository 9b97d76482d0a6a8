"""Object detection (boxing fish): boxes with a class each, any number per image.

Targets are :class:`~fishbear.data.boxes.Boxes` on disk and, in a batch, one dict per image
(``boxes``: N x 4 pixels of the transformed image, ``labels``: N class indices), since images hold
different numbers of boxes; albumentations moves, clips and drops boxes with the image. Images
without boxes (negatives) are kept: they teach the detector what is not an object. Predictions
are boxes in each original image's pixels; ``predict`` draws them and writes Pascal VOC XML, and
a detector sorts video frames into ``<class>/`` or ``no_<class>/``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import default_collate

from fishbear.core.geometry import as_hw, letterbox
from fishbear.core.tensors import to_cpu
from fishbear.kinds.base import Kind
from fishbear.kinds.meta import KindSettings


@dataclass(frozen=True)
class DetectSettings(KindSettings):
    """``score_threshold``: a box counts as found from this score on, in pictures, the report's
    counts, ``predict`` and frame sorting (mAP uses every box)."""

    score_threshold: float = 0.5


class Detect(Kind):
    name: ClassVar[str] = "detect"
    package: ClassVar[str] = __name__
    written_files: ClassVar[str | None] = "boxes"
    output: ClassVar[str] = "boxes"
    resamples: ClassVar[int] = 200  # each draw reruns the COCO evaluation
    model_hint: ClassVar[str] = "model=fasterrcnn_small (fast on a CPU), model=fasterrcnn_mobilenet or model=fasterrcnn"
    eval_resize: ClassVar[str] = "squish"
    sorts_frames: ClassVar[bool] = True
    settings_type: ClassVar[type[KindSettings]] = DetectSettings

    def compose_args(self) -> dict[str, Any]:
        import albumentations as A

        # a box a crop leaves less than a quarter of is dropped: what is left is no longer the object
        return {"bbox_params": A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=0.25,
                                            clip=True)}

    def pack_target(self, sample: Any, scale: float) -> str:
        import json

        boxes = sample.target
        return json.dumps({"xyxy": (np.asarray(boxes.xyxy, dtype=np.float64).reshape(-1, 4) * scale).tolist(),
                           "labels": list(boxes.labels), "difficult": [bool(d) for d in boxes.difficult],
                           "codes": [int(c) for c in boxes.codes]})

    def unpack_target(self, value: Any) -> Any:
        import json

        from fishbear.data.boxes import Boxes

        found = json.loads(str(value))
        return Boxes(np.asarray(found["xyxy"], dtype=np.float32).reshape(-1, 4), tuple(found["labels"]),
                     tuple(found["difficult"]), tuple(found["codes"]))

    def transform_inputs(self, sample: Any, image: np.ndarray, num_classes: int) -> dict[str, Any]:
        boxes = sample.target
        return {"bboxes": np.asarray(boxes.xyxy, dtype=np.float32).reshape(-1, 4), "labels": list(boxes.codes)}

    def target(self, sample: Any, out: dict[str, Any], num_classes: int) -> dict[str, torch.Tensor]:
        return {"boxes": torch.as_tensor(np.asarray(out["bboxes"], dtype=np.float32)).reshape(-1, 4),
                "labels": torch.as_tensor(np.asarray(out["labels"], dtype=np.int64)).reshape(-1)}

    def stratum(self, sample: Any) -> Hashable | None:
        return len(sample.target) > 0

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = default_collate([{k: v for k, v in item.items() if k != "target"} for item in items])
        batch["target"] = [item["target"] for item in items]
        return batch

    def write_shapes(self, source: Any, root: Path) -> None:
        """Pascal VOC's layout: ``JPEGImages/<name>.jpg`` and ``Annotations/<name>.xml`` with a box
        per shape, named by its kind. About one image in eight has no shape (a negative, as the
        empty frames of the fish video); shapes may overlap, as fish do."""
        from PIL import Image

        from fishbear.data.shapes import SHAPE_KINDS, render_scene
        from fishbear.formats.voc import voc_xml

        (root / "JPEGImages").mkdir(parents=True)
        (root / "Annotations").mkdir()
        for index in range(source.total_flat()):
            rng = source.rng("train", index)
            count = 0 if rng.random() < 0.125 else int(rng.integers(1, 4))
            kinds = list(rng.choice(SHAPE_KINDS, size=count, replace=False))
            scene = render_scene(rng, source.image_size, kinds, 0.12, 0.25)
            name = f"shapes_{index:05d}"
            Image.fromarray(scene.image).save(root / "JPEGImages" / f"{name}.jpg", quality=source.jpeg_quality)
            objects = [(shape.kind, shape.bbox(source.image_size)) for shape in scene.shapes]
            xml = voc_xml(f"{name}.jpg", source.image_size, source.image_size, objects)
            (root / "Annotations" / f"{name}.xml").write_text(xml)

    # -- export: one picture a run of the graph, traced by the TorchScript exporter at the model's size --
    # (torch.export cannot take Faster R-CNN's proposal filtering, whose shapes depend on the data:
    # pytorch #146152, vision #8937); every box from the model's own minimum score, in the picture's pixels
    export_outputs: ClassVar[tuple[str, ...]] = ("boxes", "scores", "labels")
    export_reading: ClassVar[str] = "boxes"
    export_batch: ClassVar[int | None] = 1
    parity_tolerance: ClassVar[float] = 1e-3  # a score; box corners have their own limit (parity.BOX_PX)

    def exported(self, outputs: Any, original_size: Any, meta: Any) -> tuple[Any, ...]:
        """The one picture's boxes in its own pixels (the fit undone, as :meth:`interpret`), their
        scores and class indices, best first."""
        found = outputs[0]
        size = original_size[0].float().flip(0)  # (width, height)
        model_h, model_w = as_hw(meta.image_size)
        model = torch.tensor([model_w, model_h], dtype=torch.float32)
        if meta.resize != "pad":
            boxes = found["boxes"] * (size / model).repeat(2)
        else:
            factor = torch.minimum(model_h / size[1], model_w / size[0])
            offset = ((model - size * factor) / 2).repeat(2)
            boxes = (found["boxes"] - offset) / factor
        order = found["scores"].argsort(descending=True)
        return boxes[order], found["scores"][order], found["labels"][order]

    def headline(self, answers: list[dict[str, Any]], samples: list[Any], classes: list[str]) -> tuple[str, Any, bool]:
        """Per picture, the F1 of its boxes at IoU 0.5 (a box found counts once, of the right
        class, from the score threshold on); a picture with neither boxes nor found boxes scores 1."""
        from torchvision.ops import box_iou

        values = []
        for answer, sample in zip(answers, samples):
            truth = [(tuple(b), label) for b, label in zip(sample.target.xyxy, sample.target.labels)]
            found = [(tuple(b["box"]), b["label"]) for b in answer["boxes"]]
            if not truth and not found:
                values.append(1.0)
                continue
            hits, used = 0, set()
            if truth and found:
                iou = box_iou(torch.tensor([b for b, _ in found], dtype=torch.float32).reshape(-1, 4),
                              torch.tensor([b for b, _ in truth], dtype=torch.float32).reshape(-1, 4))
                for i, (_, label) in enumerate(found):
                    free = [j for j in range(len(truth)) if j not in used and truth[j][1] == label and iou[i, j] >= 0.5]
                    if free:
                        best = max(free, key=lambda j: float(iou[i, j]))
                        used.add(best)
                        hits += 1
            values.append(2 * hits / (len(truth) + len(found)))
        return "box F1 at IoU 0.5", np.array(values, float), True

    # -- test-time augmentation: the mirror's boxes mirrored back, both views' boxes fused --
    def mirror_refusal(self, meta: Any) -> None:
        return None

    def unmirror(self, outputs: Any, width: int) -> Any:
        """A box from x0 to x1 on the mirror image is a box from width - x1 to width - x0."""
        return [{**o, "boxes": torch.stack([width - o["boxes"][:, 2], o["boxes"][:, 1], width - o["boxes"][:, 0],
                                            o["boxes"][:, 3]], dim=1)} for o in outputs]

    def merge_views(self, outputs: Any, other: Any) -> Any:
        """Weighted box fusion per picture (:func:`~fishbear.kinds.detect.fusion.fuse_boxes`)."""
        from fishbear.kinds.detect.fusion import fuse_boxes

        merged = []
        for a, b in zip(outputs, other):
            boxes, scores, labels = fuse_boxes(torch.cat([a["boxes"], b["boxes"]]), torch.cat([a["scores"], b["scores"]]),
                                               torch.cat([a["labels"], b["labels"]]), views=2)
            merged.append({"boxes": boxes, "scores": scores, "labels": labels})
        return merged

    def predictions(self, outputs: Any) -> Any:
        return outputs

    def kept_predictions(self, outputs: Any) -> Any:
        return to_cpu(outputs)

    def interpret(self, predictions: Any, sizes: list[tuple[int, int]], meta: Any) -> list[dict[str, Any]]:
        """Boxes from the model's ``score_threshold`` on, in pixels of each original image (the whole
        frame was resized to the model's size), highest score first. ``label`` and ``probability``
        say whether anything was found: the top box's class and score, or ``no_<class>`` and one
        minus the top score (what frame sorting files frames by)."""
        names = list(meta.classes)
        threshold = float(meta.settings.score_threshold)
        height, width = as_hw(meta.image_size)
        out = []
        for found, (orig_h, orig_w) in zip(predictions, sizes):
            order = found["scores"].argsort(descending=True)
            box = letterbox(meta.resize, meta.image_size, orig_h, orig_w)
            if box is None:
                scale = torch.tensor([orig_w / width, orig_h / height] * 2)
                boxes = (found["boxes"][order].float().cpu() * scale).tolist()
            else:  # the letterbox undone
                factor, left, top = box
                shift = torch.tensor([left, top] * 2)
                boxes = ((found["boxes"][order].float().cpu() - shift) / factor).tolist()
            scores = found["scores"][order].float().cpu().tolist()
            labels = found["labels"][order].cpu().tolist()
            kept = [{"label": names[c], "score": s, "box": [round(v, 1) for v in b]}
                    for b, s, c in zip(boxes, scores, labels) if s >= threshold]
            top = scores[0] if scores else 0.0
            nothing = f"no_{names[0]}" if len(names) == 1 else "nothing"
            out.append({
                "boxes": kept,
                "top_score": top,
                "label": kept[0]["label"] if kept else nothing,
                "probability": kept[0]["score"] if kept else 1.0 - top,
                "summary": (f"{len(kept)} box(es): " + ", ".join(f"{k['label']} {k['score']:.2f} {k['box']}" for k in kept))
                if kept else f"no box scored {threshold} or more (best {top:.2f})",
                "rows": [{"label": k["label"], "score": f"{k['score']:.4f}",
                          **{name: f"{v:.1f}" for name, v in zip(("xmin", "ymin", "xmax", "ymax"), k["box"])}}
                         for k in kept] or [{"label": "", "score": "", "xmin": "", "ymin": "", "xmax": "", "ymax": ""}],
                "columns": {"boxes": str(len(kept)), "top_label": kept[0]["label"] if kept else "",
                            "top_score": f"{top:.4f}"},
            })
        return out

    def output_writer(self, meta: Any, folder: Path, files: Any, label_format: str | None = None) -> BoxWriter:
        return BoxWriter(meta, folder, files, label_format or "voc")

    def event_target(self, classes: list[str]) -> str | None:
        """A detector's visits are of any object it boxes: its class, or ``object`` for several."""
        return classes[0] if len(classes) == 1 else "object"

    def event_score(self, result: dict[str, Any], target: str) -> float:
        """The best box's score, whether or not it reached the sorting threshold."""
        return float(result["top_score"])

    def frame_columns(self, result: dict[str, Any]) -> dict[str, str]:
        """``label:score:xmin,ymin,xmax,ymax`` per box in the frame's pixels, space-separated."""
        return {"boxes": " ".join(f"{b['label']}:{b['score']:.2f}:{','.join(f'{v:.0f}' for v in b['box'])}"
                                  for b in result["boxes"])}


class BoxWriter:
    """Per image: the picture with its boxes drawn, and its boxes in ``label_format`` (any format
    of ``fishbear.formats`` that fishbear writes: voc, coco, yolo, labelstudio...) for annotation
    tools to load for correction (the pre-labelling loop), with the scores to sort by.

    Files go through the command's :class:`~fishbear.core.outputs.OutputFiles`: a label file the
    user has corrected since the last run is never written over. ``key`` is the image's path under
    the input folder without its suffix (``cam1/img``), so images of one name in two folders get
    two label files."""

    def __init__(self, meta: Any, folder: Path, files: Any, label_format: str) -> None:
        from fishbear.formats import writer_for
        from fishbear.reports.plots import palette

        self.folder = Path(folder)
        self.files = files
        self.count = 0
        self.classes = list(meta.classes)
        self.colours = [tuple(int(v) for v in c) for c in palette(len(self.classes))]
        self.labels = writer_for(label_format)(self.folder, files, self.classes)

    def write(self, result: dict[str, Any], key: str, image: Path | np.ndarray) -> dict[str, str]:
        """``image`` is the file (the labels point at it) or a video frame (saved beside them)."""
        from PIL import Image, ImageDraw

        from fishbear.data.boxes import Boxes
        from fishbear.data.images import load_rgb

        if isinstance(image, Path):  # drawn on the picture as it looks: the boxes are of that picture
            picture, source = Image.fromarray(load_rgb(image)), image
        else:
            picture, source = Image.fromarray(image), self.folder / f"{key}.jpg"
            self.files.write_bytes(source, _jpeg(picture, 95))
        drawn = picture.copy()
        pen = ImageDraw.Draw(drawn)
        width = max(2, round(max(drawn.size) / 300))
        for box in result["boxes"]:
            colour = self.colours[self.classes.index(box["label"]) % len(self.colours)]
            pen.rectangle(box["box"], outline=colour, width=width)
            pen.text((box["box"][0] + width, box["box"][1] + width), f"{box['label']} {box['score']:.2f}", fill=colour)
        drawn_path = self.files.write_bytes(self.folder / f"{key}.boxes.jpg", _jpeg(drawn, 90))
        self.count += 1
        boxes = Boxes.of([(*b["box"], b["label"], False) for b in result["boxes"]])
        cells = self.labels.add(source, key, boxes, [b["score"] for b in result["boxes"]])
        return {"drawn": str(drawn_path), **cells}

    def note(self) -> str:
        """Called once at the end: writes what spans images and says what was written."""
        if not self.count:
            return ""
        return f"; boxes drawn for {self.count} images in {self.folder}; {self.labels.close()}"


def _jpeg(picture: Any, quality: int) -> bytes:
    import io

    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


KIND = Detect()
