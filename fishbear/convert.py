"""``fishbear convert src=PATH src_format=coco dst=PATH dst_format=voc`` (Hydra overrides of
``conf/convert.yaml``; ``python -m fishbear.convert`` too): a box dataset from any format fishbear
reads into any it writes (``fishbear.formats``: Pascal VOC, COCO, YOLO, Label Studio), images
alongside, so labels move between CVAT, Label Studio, LabelImg, Ultralytics and fishbear without a
hand-written script.

The source is read by the same reader a training run uses (so clipping of boxes that cross the
border, crowd handling and every format's errors are the same); the destination is written in
the layout its reader reads by default, so ``data=boxes data/reader=<dst_format> data.root=DST``
trains on it directly. ``dst`` may hold only fishbear's own earlier output (``fishbear.core.outputs``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from fishbear.core.errors import ConfigError, DataError
from fishbear.core.outputs import OutputFiles, refuse_stem_clashes
from fishbear.engine.commandline import compose_cli, user_errors_exit
from fishbear.formats import FORMATS, readable_as, writable, writer_for

SOURCES = readable_as(writable())  # the formats holding boxes
USAGE = (f"fishbear convert src=PATH src_format={'|'.join(SOURCES)} dst=PATH dst_format={'|'.join(writable())} "
         "[reader.<option>=...] [images=copy|link] [image_prefix=...] [overwrite=false]")


@user_errors_exit
def main(argv: list[str] | None = None) -> Path:
    args = list(sys.argv[1:] if argv is None else argv)
    # src_format chooses the reader config; its options stay reader.<key>=...
    source = next((a.split("=", 1)[1] for a in args if a.startswith("src_format=")), None)
    if source is not None and source in FORMATS and source not in SOURCES:
        raise ConfigError(f"src_format={source} holds {FORMATS[source].kind} labels; convert moves boxes between "
                          f"{', '.join(SOURCES)}.")
    overrides = args + ([f"data/reader@reader={source}"] if source else [])
    return convert(compose_cli("convert", overrides, USAGE))


def convert(cfg: DictConfig) -> Path:
    from fishbear.engine.config import instantiate

    writer_class = writer_for(str(cfg.dst_format), key="dst_format")
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
    catalog = instantiate(cfg.reader, "reader")(src)  # every box reader config of conf/data/reader
    samples = catalog.splits["train"]
    if not sum(len(s.target) for s in samples):
        raise DataError(f"{src} ({cfg.src_format}): the reader found {len(samples)} image(s) but no box at all; "
                        "nothing was written. Check the reader's settings (reader.<key>=...) or the label files.")
    # two images of one name, or one stem, would be one image or one label file in dst
    refuse_stem_clashes(((s.image.name, s.image) for s in samples), "images of the name")
    refuse_stem_clashes(((s.image.stem, s.image) for s in samples), "label files of the stem")
    with outputs:
        writer = writer_class(dst, outputs, list(catalog.classes), images=str(cfg.images),
                              image_prefix=str(cfg.image_prefix or ""))
        for sample in samples:
            writer.add(sample.image, sample.image.stem, sample.target)
        writer.close()
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
