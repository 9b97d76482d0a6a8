"""COCO instances JSON: the format most published detection datasets and tools speak.

``images[]`` (``id``, ``file_name``, ``width``, ``height``), ``annotations[]`` (``image_id``,
``category_id``, ``bbox`` = [x, y, width, height] in pixels from the top-left corner, ``iscrowd``)
and ``categories[]`` (``id``, ``name``). Traps of real files: category ids run with gaps (COCO's
80 classes use ids 1-90), so classes are mapped by id and named from ``categories``; crowd
annotations (``iscrowd: 1``, an RLE mask over a crowd of objects) are regions COCO's evaluation
ignores, neither to be found nor a false positive: fishbear leaves them out of training and
evaluation targets (``crowd: drop``, counted in the log) or keeps them as ordinary boxes
(``crowd: keep``); images without annotations are negatives.

Written too: a dataset as an instances JSON (:func:`coco_instances`) and predictions as a COCO
results file (:func:`coco_results`), both loadable by pycocotools.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fishbear.core.errors import DataError
from fishbear.data.boxes import Boxes, image_size, recorded_size
from fishbear.data.catalog import Catalog
from fishbear.data.label_files import locate_image, read_label_json, structure_of
from fishbear.formats.base import BoxLabelWriter, LabelFileBoxReader, LabelFormat

log = logging.getLogger(__name__)


def read_coco(path: Path, images: Path, categories: list[str] | None = None, crowd: str = "drop",
              exclude: list[str] | None = None, root: Path | None = None,
              allow_outside: bool = False) -> list[tuple[Path, Boxes, tuple[float, float] | None]]:
    """``(image, boxes, the width and height images[] records)`` per image listed in the JSON (every
    one, annotated or not); boxes of the ``categories`` named (all when None). ``exclude``: images
    holding any of these classes are left out. A ``file_name`` outside the dataset (``root``,
    ``images``) is refused unless ``allow_outside``; an image id or file name listed twice is
    refused (one image's boxes would go to the other)."""
    if crowd not in ("drop", "keep"):
        raise DataError(f"data.reader.crowd={crowd!r}: use drop or keep.")
    data = read_label_json(path, "data.reader.json", "the COCO tool")
    with structure_of(path, "a COCO instances file (images, annotations, categories)"):
        names = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        listed = [(int(i["id"]), str(i["file_name"])) for i in data["images"]]
        recorded = {int(i["id"]): recorded_size(i.get("width"), i.get("height")) for i in data["images"]}
        annotations = data.get("annotations", [])
    seen_ids: dict[int, int] = {}
    seen_names: dict[str, int] = {}
    for number, (image_id, file_name) in enumerate(listed):
        if image_id in seen_ids:
            raise DataError(f"{path}: images[{number}] ({file_name!r}) has id {image_id}, which images[{seen_ids[image_id]}] "
                            "already has: every image needs an id of its own (annotations are matched by it). Fix or "
                            "re-export the file.")
        if file_name in seen_names:
            raise DataError(f"{path}: images[{number}] lists file_name {file_name!r} again (first at images["
                            f"{seen_names[file_name]}]); list each image once.")
        seen_ids[image_id], seen_names[file_name] = number, number
    unknown = sorted(set(categories or ()) - set(names.values()))
    if unknown:
        raise DataError(f"data.reader.categories names {', '.join(unknown)}, which {path} does not define "
                        f"(it has: {', '.join(sorted(names.values())[:12])}...).")
    rows: dict[int, list[tuple[float, float, float, float, str, bool]]] = {image_id: [] for image_id, _ in listed}
    present: dict[int, set[str]] = {image_id: set() for image_id, _ in listed}
    crowds = 0
    for number, ann in enumerate(annotations):
        where = f"{path}: annotations[{number}] (id {ann.get('id')})"
        try:
            image_id, name = int(ann["image_id"]), names[int(ann["category_id"])]
            x, y, w, h = (float(v) for v in ann["bbox"])
        except KeyError as err:
            raise DataError(f"{where} lacks {err} or names a category/image the file does not list.") from None
        except (TypeError, ValueError):
            raise DataError(f"{where}: bbox {ann.get('bbox')!r} is not [x, y, width, height].") from None
        if image_id not in rows:
            raise DataError(f"{where} is for image_id {image_id}, which images[] does not list.")
        present[image_id].add(name)
        if ann.get("iscrowd") and crowd == "drop":
            crowds += 1
            continue
        if categories is None or name in categories:
            rows[image_id].append((x, y, x + w, y + h, name, False))
    if crowds:
        log.info("%s: %d crowd annotation(s) left out (data.reader.crowd=drop; COCO's evaluation ignores them)",
                 path, crowds)
    entries = []
    for number, (image_id, file_name) in enumerate(listed):
        if exclude and present[image_id] & set(exclude):
            continue
        image = locate_image(images, file_name, path, root if root is not None else images, f"images[{number}]",
                             allow_outside)
        if image is None:
            raise DataError(f"{path} lists image '{file_name}', which is not in {images}; add it or set "
                            "data.reader.images to the folder holding it.")
        entries.append((image, Boxes.of(rows[image_id]), recorded[image_id]))
    return entries


@dataclass(frozen=True)
class CocoReader(LabelFileBoxReader):
    """``json`` and ``images`` under the root (COCO's own layout by default); ``categories``
    keeps a subset of classes (None: all); ``crowd``: drop or keep crowd annotations."""

    json: str = "annotations/instances_train2017.json"
    images: str = "train2017"
    categories: list[str] | None = None
    crowd: str = "drop"
    exclude: list[str] = field(default_factory=list)

    def read(self, root: Path) -> tuple[list[Any], str]:
        path = root / self.json
        if not path.is_file():
            raise DataError(f"No COCO instances file at {path}; set data.reader.json (relative to data.root).")
        entries = read_coco(path, root / self.images, list(self.categories) if self.categories else None, self.crowd,
                            list(self.exclude), root, self.allow_outside)
        return entries, str(path)


def coco_instances(entries: list[tuple[Path, Boxes]], classes: list[str], image_root: Path | None = None,
                   names: list[str] | None = None) -> dict[str, Any]:
    """A COCO instances JSON of ``(image, boxes)`` pairs: ids from 1, categories in ``classes``
    order, ``file_name`` from ``names``, else relative to ``image_root`` (the bare name when None)."""
    category = {name: i for i, name in enumerate(classes, start=1)}
    images, annotations = [], []
    for image_id, (image, boxes) in enumerate(entries, start=1):
        width, height = image_size(image)
        if names is not None:
            name = names[image_id - 1]
        else:
            name = image.relative_to(image_root).as_posix() if image_root is not None else image.name
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for (x0, y0, x1, y1), label in zip(np.asarray(boxes.xyxy, dtype=float).reshape(-1, 4), boxes.labels):
            w, h = x1 - x0, y1 - y0
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category[label],
                                "bbox": [round(x0, 2), round(y0, 2), round(w, 2), round(h, 2)],
                                "area": round(w * h, 2), "iscrowd": 0, "segmentation": []})
    return {"info": {"description": "written by fishbear"}, "licenses": [], "images": images,
            "annotations": annotations,
            "categories": [{"id": i, "name": name, "supercategory": ""} for name, i in category.items()]}


def coco_results(predictions: list[tuple[int, list[dict[str, Any]]]], classes: list[str]) -> list[dict[str, Any]]:
    """A COCO results file: per ``(image_id, boxes)``, one entry per predicted box (``label``,
    ``score``, ``box`` as xyxy pixels), category ids as :func:`coco_instances` numbers them."""
    category = {name: i for i, name in enumerate(classes, start=1)}
    out = []
    for image_id, boxes in predictions:
        for box in boxes:
            x0, y0, x1, y1 = (float(v) for v in box["box"])
            out.append({"image_id": int(image_id), "category_id": category[box["label"]],
                        "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(box["score"])})
    return out


@dataclass(frozen=True)
class CocoNegativesReader:
    """A two-class image set whose negatives are COCO images (the Level-2 bears exercise): the
    positives are the images of an ImageFolder-style ``positives`` folder, or, when it is None,
    the COCO images annotated ``positive_category``; the negatives are the COCO images holding
    no annotation of the ``exclude`` classes ("removing any sneaky bears": a teddy bear is COCO's
    own class and stays a negative), sampled with ``seed`` to ``negatives`` images or to
    ``negative_ratio`` per positive (all of them when both are None). ``test_per_class``: that many
    images of each class go to test, the rest to train (the exercise's rule); None: all train.
    Paths are relative to the data root."""

    json: str = "coco/annotations/instances_train2017.json"
    images: str = "coco/train2017"
    positives: str | None = "bears/train/bear"
    positive_category: str = "bear"
    positive_name: str = "bear"
    negative_name: str = "not_bear"
    exclude: list[str] = field(default_factory=lambda: ["bear"])
    negatives: int | None = None
    negative_ratio: float | None = None
    seed: int = 42
    test_per_class: int | None = None
    allow_outside: bool = False

    def __call__(self, root: Path) -> Catalog:
        from fishbear.data.catalog import Sample
        from fishbear.data.images import is_image_file

        root = Path(root)
        path = root / self.json
        if not path.is_file():
            raise DataError(f"No COCO instances file at {path}; set data.reader.json (relative to data.root).")
        every = read_coco(path, root / self.images, crowd="keep", root=root, allow_outside=self.allow_outside)
        if self.positives is None:
            positives = [entry[0] for entry in every if self.positive_category in entry[1].labels]
        else:
            folder = root / self.positives
            if not folder.is_dir():
                raise DataError(f"data.reader.positives={self.positives}: {folder} is not a folder; set it (relative to "
                                "data.root), or to null to take COCO's own images of the category.")
            positives = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
        excluded = set(self.exclude) | ({self.positive_category} if self.positives is None else set())
        negatives = [entry[0] for entry in every if not excluded & set(entry[1].labels)]
        if not positives or not negatives:
            raise DataError(f"{path}: found {len(positives)} positive and {len(negatives)} negative image(s); both are needed.")
        rng = np.random.default_rng(self.seed)
        wanted = self.negatives if self.negatives is not None else (
            None if self.negative_ratio is None else int(round(self.negative_ratio * len(positives))))
        if wanted is not None:
            if wanted < len(negatives):
                negatives = [negatives[i] for i in sorted(rng.choice(len(negatives), wanted, replace=False))]
        classes = sorted([self.positive_name, self.negative_name])
        labelled = [(p, classes.index(self.positive_name)) for p in positives] + \
                   [(p, classes.index(self.negative_name)) for p in negatives]
        splits: dict[str, list] = {"train": []}
        if self.test_per_class:
            splits["test"] = []
            for label in range(len(classes)):
                members = [p for p, c in labelled if c == label]
                held = set(rng.choice(len(members), min(self.test_per_class, len(members) - 1), replace=False).tolist())
                for i, image in enumerate(members):
                    splits["test" if i in held else "train"].append(Sample(image, label))
        else:
            splits["train"] = [Sample(p, c) for p, c in labelled]
        return Catalog(splits=splits, classes=classes, kind="classify")


class CocoWriter(BoxLabelWriter):
    """An instances JSON for all images (categories in class order, ids from 1); predicting, the
    boxes are annotations with a ``score`` (CVAT, Label Studio load them) and a COCO results file
    beside it (``results.json``, for pycocotools' evaluation)."""

    IMAGES = "train2017"
    LABELS = "annotations"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._entries: list[tuple[Path, str, Boxes, Sequence[float] | None]] = []

    def add(self, image: Path, key: str, boxes: Boxes, scores: Sequence[float] | None = None) -> dict[str, str]:
        placed, name = self.place(image, key)
        self._entries.append((placed, name, boxes, scores))
        self.count += 1
        return {}

    def close(self) -> str:
        if not self._entries:
            return ""
        instances = coco_instances([(image, boxes) for image, _, boxes, _ in self._entries], self.classes,
                                   names=[name for _, name, _, _ in self._entries])
        scored = [s for *_, scores in self._entries for s in (scores or [])]
        if self.placing:
            self.files.write_text(self.root / self.LABELS / "instances_train2017.json", json.dumps(instances))
            return f"COCO instances for {self.count} images in {self.root / self.LABELS}"
        if scored:
            for annotation, score in zip(instances["annotations"], scored):
                annotation["score"] = round(float(score), 4)
        self.files.write_text(self.root / "instances.json", json.dumps(instances))
        predictions = [(i, [{"label": label, "score": float(score), "box": [float(v) for v in box]}
                            for box, label, score in zip(boxes.xyxy, boxes.labels, scores or [1.0] * len(boxes))])
                       for i, (_, _, boxes, scores) in enumerate(self._entries, start=1)]
        self.files.write_text(self.root / "results.json", json.dumps(coco_results(predictions, self.classes)))
        return f"COCO instances.json and results.json for {self.count} images in {self.root}"


FORMATS = (
    LabelFormat(name="coco", kind="detect", reader=CocoReader, writer=CocoWriter,
                summary="COCO instances JSON: category ids with gaps, crowd regions, images without annotations",
                layout="annotations/instances_train2017.json + train2017/"),
    LabelFormat(name="coco_negatives", kind="classify", reader=CocoNegativesReader,
                summary="a class of photos against COCO images holding none of it (the bears exercise)",
                layout="an ImageFolder class folder + COCO's instances JSON and images"),
)
