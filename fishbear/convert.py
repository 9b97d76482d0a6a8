"""``python -m fishbear.convert src=PATH src_format=coco dst=PATH dst_format=voc`` (Hydra overrides
of ``conf/convert.yaml``): a box dataset from any format fishbear reads into Pascal VOC, COCO
instances JSON or YOLO txt, images alongside, so labels move between CVAT, Label Studio,
LabelImg, Ultralytics and fishbear without a hand-written script.

The source is read by the same reader a training run uses (so clipping of boxes that cross the
border, crowd handling and every format's errors are the same); the destination is written in
the layout its reader reads by default, so ``data=boxes data/reader=<dst_format> data.root=DST``
trains on it directly.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig

from fishbear.cli import compose_cli, user_errors_exit
from fishbear.data.boxes import Boxes, image_size
from fishbear.data.catalog import Catalog
from fishbear.errors import ConfigError, DataError

USAGE = ("python -m fishbear.convert src=PATH src_format=voc|coco|yolo|cvat|via|vott_csv|vott_json|cntk dst=PATH "
         "dst_format=voc|coco|yolo [reader.<option>=...] [images=copy|link]")
FORMATS = ("voc", "coco", "yolo")


def _place(image: Path, target: Path, how: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise DataError(f"{target} exists already: two source images share the name {image.name}, or dst is not "
                        "empty. Convert into an empty folder.")
    if how == "link":
        try:
            os.link(image, target)
            return
        except OSError:
            pass
    shutil.copy2(image, target)


def write_voc(catalog: Catalog, dst: Path, images: str) -> None:
    from fishbear.data.readers_voc import voc_xml
    from fishbear.io import atomic_write_text

    for sample in catalog.splits["train"]:
        boxes: Boxes = sample.target
        _place(sample.image, dst / "JPEGImages" / sample.image.name, images)
        width, height = image_size(sample.image)
        objects = [(label, tuple(float(v) for v in box)) for box, label in zip(boxes.xyxy, boxes.labels)]
        atomic_write_text(dst / "Annotations" / f"{sample.image.stem}.xml", voc_xml(sample.image.name, width, height, objects))


def write_coco(catalog: Catalog, dst: Path, images: str) -> None:
    from fishbear.data.readers_coco import coco_instances
    from fishbear.io import atomic_write_text

    entries = []
    for sample in catalog.splits["train"]:
        target = dst / "train2017" / sample.image.name
        _place(sample.image, target, images)
        entries.append((target, sample.target))
    data = coco_instances(entries, list(catalog.classes), dst / "train2017")
    atomic_write_text(dst / "annotations" / "instances_train2017.json", json.dumps(data))


def write_yolo(catalog: Catalog, dst: Path, images: str) -> None:
    import yaml

    from fishbear.data.readers_yolo import yolo_lines
    from fishbear.io import atomic_write_text

    classes = list(catalog.classes)
    for sample in catalog.splits["train"]:
        _place(sample.image, dst / "images" / "train" / sample.image.name, images)
        if len(sample.target):  # no label file: no objects, YOLO's convention for negatives
            width, height = image_size(sample.image)
            atomic_write_text(dst / "labels" / "train" / f"{sample.image.stem}.txt",
                              yolo_lines(sample.target, classes, width, height))
    atomic_write_text(dst / "data.yaml", yaml.safe_dump(
        {"path": ".", "train": "images/train", "val": "images/train", "names": dict(enumerate(classes))}, sort_keys=False))


WRITERS = {"voc": write_voc, "coco": write_coco, "yolo": write_yolo}


@user_errors_exit
def main(argv: list[str] | None = None) -> Path:
    args = list(sys.argv[1:] if argv is None else argv)
    # src_format chooses the reader config; its options stay reader.<key>=...
    source = next((a.split("=", 1)[1] for a in args if a.startswith("src_format=")), None)
    overrides = args + ([f"data/reader@reader={source}"] if source else [])
    return convert(compose_cli("convert", overrides, USAGE))


def convert(cfg: DictConfig) -> Path:
    from fishbear.config import instantiate

    if cfg.dst_format not in FORMATS:
        raise ConfigError(f"dst_format={cfg.dst_format}: fishbear writes {', '.join(FORMATS)}.")
    if cfg.images not in ("copy", "link"):
        raise ConfigError(f"images={cfg.images}: use copy or link.")
    src, dst = Path(str(cfg.src)), Path(str(cfg.dst))
    if not src.is_dir():
        raise DataError(f"src={src} is not a folder.")
    if dst.exists() and any(dst.iterdir()):
        raise DataError(f"dst={dst} is not empty; convert into a new or empty folder.")
    catalog = instantiate(cfg.reader, "reader")(src)  # every conf/data/reader config reads boxes
    WRITERS[str(cfg.dst_format)](catalog, dst, str(cfg.images))
    samples = catalog.splits["train"]
    print(f"{len(samples)} images, {sum(len(s.target) for s in samples)} boxes of {len(catalog.classes)} classes "
          f"({sum(1 for s in samples if not len(s.target))} without boxes) from {src} ({cfg.src_format}) written to "
          f"{dst} ({cfg.dst_format}). Train on it: data=boxes data/reader={cfg.dst_format} data.root={dst}")
    return dst


if __name__ == "__main__":
    main()
