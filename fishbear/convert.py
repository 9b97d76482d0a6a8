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
import sys
from pathlib import Path

from omegaconf import DictConfig

from fishbear.engine.commandline import compose_cli, user_errors_exit
from fishbear.data.boxes import Boxes, image_size
from fishbear.data.catalog import Catalog
from fishbear.core.errors import ConfigError, DataError
from fishbear.core.outputs import OutputFiles, refuse_stem_clashes

USAGE = ("python -m fishbear.convert src=PATH src_format=voc|coco|yolo|cvat|via|vott_csv|vott_json|cntk dst=PATH "
         "dst_format=voc|coco|yolo [reader.<option>=...] [images=copy|link] [overwrite=false]")
FORMATS = ("voc", "coco", "yolo")


def _placed(catalog: Catalog, folder: str, files: OutputFiles, link: bool, dst: Path) -> list[tuple[Path, Path]]:
    """Every sample's image copied (or hard-linked) to ``dst/folder/<name>``: ``(source, placed)``.
    Two images of one name, or of one stem (their label files would be one), are refused first."""
    samples = catalog.splits["train"]
    refuse_stem_clashes(((s.image.name, s.image) for s in samples), "images of the name")
    refuse_stem_clashes(((s.image.stem, s.image) for s in samples), "label files of the stem")
    return [(s.image, files.place_file(s.image, dst / folder / s.image.name, link)) for s in samples]


def write_voc(catalog: Catalog, dst: Path, files: OutputFiles, link: bool) -> None:
    from fishbear.formats.voc import voc_xml

    for sample, (_, placed) in zip(catalog.splits["train"], _placed(catalog, "JPEGImages", files, link, dst)):
        boxes: Boxes = sample.target
        width, height = image_size(placed)
        objects = [(label, tuple(float(v) for v in box)) for box, label in zip(boxes.xyxy, boxes.labels)]
        files.write_text(dst / "Annotations" / f"{placed.stem}.xml", voc_xml(placed.name, width, height, objects))


def write_coco(catalog: Catalog, dst: Path, files: OutputFiles, link: bool) -> None:
    from fishbear.formats.coco import coco_instances

    placed = _placed(catalog, "train2017", files, link, dst)
    entries = [(target, sample.target) for sample, (_, target) in zip(catalog.splits["train"], placed)]
    data = coco_instances(entries, list(catalog.classes), dst / "train2017")
    files.write_text(dst / "annotations" / "instances_train2017.json", json.dumps(data))


def write_yolo(catalog: Catalog, dst: Path, files: OutputFiles, link: bool) -> None:
    import yaml

    from fishbear.formats.yolo import yolo_lines

    classes = list(catalog.classes)
    for sample, (_, placed) in zip(catalog.splits["train"], _placed(catalog, "images/train", files, link, dst)):
        if len(sample.target):  # no label file: no objects, YOLO's convention for negatives
            width, height = image_size(placed)
            files.write_text(dst / "labels" / "train" / f"{placed.stem}.txt",
                             yolo_lines(sample.target, classes, width, height))
    files.write_text(dst / "data.yaml", yaml.safe_dump(
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
    from fishbear.engine.config import instantiate

    if cfg.dst_format not in FORMATS:
        raise ConfigError(f"dst_format={cfg.dst_format}: fishbear writes {', '.join(FORMATS)}.")
    if cfg.images not in ("copy", "link"):
        raise ConfigError(f"images={cfg.images}: use copy or link.")
    src, dst = Path(str(cfg.src)), Path(str(cfg.dst))
    if not src.is_dir():
        raise DataError(f"src={src} " + ("is a file" if src.exists() else "does not exist")
                        + "; give the folder of the dataset to convert.")
    outputs = OutputFiles(bool(cfg.overwrite), way_out="another dst=")
    outputs.check_folder(dst)  # dst may hold only fishbear's own earlier output: checked before reading
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise DataError(f"dst={dst} is inside src={src}; convert into a folder of its own.")
    catalog = instantiate(cfg.reader, "reader")(src)  # every conf/data/reader config reads boxes
    samples = catalog.splits["train"]
    if not sum(len(s.target) for s in samples):
        raise DataError(f"{src} ({cfg.src_format}): the reader found {len(samples)} image(s) but no box at all; "
                        "nothing was written. Check the reader's settings (reader.<key>=...) or the label files.")
    with outputs:
        WRITERS[str(cfg.dst_format)](catalog, dst, outputs, str(cfg.images) == "link")
    print(f"{len(samples)} images, {sum(len(s.target) for s in samples)} boxes of {len(catalog.classes)} classes "
          f"({sum(1 for s in samples if not len(s.target))} without boxes) from {src} ({cfg.src_format}) written to "
          f"{dst} ({cfg.dst_format}){outputs.note()}. Train on it: data=boxes data/reader={cfg.dst_format} "
          f"data.root={dst}")
    return dst


def cli(argv: list[str]) -> int:
    """``fishbear convert ...`` and ``python -m fishbear.convert ...``."""
    main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
