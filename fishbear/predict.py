"""``python -m fishbear.predict ckpt=PATH input=IMAGE|FOLDER|VIDEO [output=CSV] [device=cpu] [every=N]``

Prints one line per image or video frame and writes them as CSV: to ``output``, or beside the
input (``<folder>/predictions.csv``, ``<stem>.predictions.csv``). The columns follow the
checkpoint's kind: class and probabilities; tags above their thresholds and every tag's
probability; each class's share of the pixels; point coordinates in the image's own pixels.
Segmentation also writes one palette PNG mask per image, ``<masks>/<stem>_P.png`` (``masks``
defaults to ``predicted_masks/`` beside the input), at the image's own size. Detection writes one
CSV row per box (``label, score, xmin, ymin, xmax, ymax`` in the image's pixels; an image without
boxes gets one row with empty cells), and into ``boxes`` (default ``predicted_boxes/`` beside the
input) the image with its boxes drawn (``<stem>.boxes.jpg``) and a Pascal VOC file
(``<stem>.xml``) that annotation tools (LabelImg, CVAT) load for correction; a video's frames are
saved there too, so the XML has its image. For a video, ``every=N`` reads every N-th frame.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from fishbear.cli import user_errors_exit
from fishbear.data.images import is_image_file
from fishbear.errors import DataError
from fishbear.inference import Predictor
from fishbear.io import atomic_write_text
from fishbear.video import is_video_file, read_frames


USAGE = ("python -m fishbear.predict ckpt=PATH input=IMAGE|FOLDER|VIDEO [output=CSV] [device=cpu|cuda] "
         "[batch_size=32] [every=1] [masks=DIR] [boxes=DIR] [score=0.5]")


def _parse(argv: list[str]) -> dict[str, str]:
    args: dict[str, str] = {"device": "cpu", "batch_size": "32", "output": "", "every": "1", "masks": "", "boxes": "",
                            "score": ""}
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in args.keys() | {"ckpt", "input"}:
            raise DataError(f"unknown argument {item!r}; usage: {USAGE}")
        args[key] = value
    for key in ("ckpt", "input"):
        if not args.get(key):
            raise DataError(f"{key}= is required; usage: {USAGE}")
    for key in ("batch_size", "every"):
        if not args[key].isdigit() or int(args[key]) < 1:
            raise DataError(f"{key}={args[key]} must be a whole number of 1 or more")
    if args["score"]:
        try:
            if not 0.0 <= float(args["score"]) <= 1.0:
                raise ValueError
        except ValueError:
            raise DataError(f"score={args['score']} must be a number between 0 and 1") from None
    return args


def _predictor(args: dict[str, str]) -> Predictor:
    predictor = Predictor.from_checkpoint(args["ckpt"], device=args["device"])
    if args["score"]:
        predictor.meta["score_threshold"] = float(args["score"])
    return predictor


@user_errors_exit
def main(argv: list[str] | None = None) -> Path:
    args = _parse(sys.argv[1:] if argv is None else argv)
    source = Path(args["input"])
    batch_size = int(args["batch_size"])
    if source.is_file() and is_video_file(source):
        return _predict_video(source, args, batch_size)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and is_image_file(p))
        default_out = source / "predictions.csv"
    elif source.is_file():
        files, default_out = [source], source.with_suffix(".predictions.csv")
    else:
        raise DataError(f"input={source} is neither an image or video file nor a folder.")
    if not files:
        raise DataError(f"{source} holds no image files.")
    predictor = _predictor(args)
    writer = output_writer(predictor, args, source if source.is_dir() else source.parent, "predicted")
    files = [p for p in files if writer.folder.resolve() not in p.resolve().parents]  # not last run's pictures
    rows = []
    for path, result in predictor.predict_files(files, batch_size):
        print(f"{path}\t{result['summary']}")
        extra = writer.write(result, path.stem, path)
        rows += [{"file": str(path), **extra, **cells} for cells in result.get("rows", [result["columns"]])]
    output = Path(args["output"]) if args["output"] else default_out
    _write_csv(output, rows)
    print(f"Predictions for {len(files)} images: {output}" + writer.note())
    return output


def output_writer(predictor: Predictor, args: dict[str, str], beside: Path, prefix: str) -> "MaskWriter | BoxWriter":
    """What a kind writes beside the CSV: masks for segmentation, drawn boxes and VOC XML for
    detection; nothing for the others."""
    if predictor.kind == "detect":
        return BoxWriter(predictor, args["boxes"] or beside / f"{prefix}_boxes")
    return MaskWriter(predictor, args["masks"] or beside / f"{prefix}_masks")


class MaskWriter:
    """Palette PNGs for segmentation checkpoints (a no-op for other kinds); colours as in the report."""

    def __init__(self, predictor: Predictor, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.count = 0
        self.colours = None
        if predictor.kind == "segment":
            from fishbear.plots import palette

            self.colours = palette(len(predictor.classes), predictor.meta.get("void_index")).ravel().tolist()

    def write(self, result: dict, stem: str, image: Any = None) -> dict[str, str]:
        if self.colours is None or "mask" not in result:
            return {}
        from PIL import Image

        from fishbear.io import atomic_write

        image = Image.fromarray(result["mask"], mode="P")
        image.putpalette(self.colours)
        path = self.folder / f"{stem}_P.png"
        atomic_write(path, lambda handle: image.save(handle, format="PNG"))
        self.count += 1
        return {"mask": str(path)}

    def note(self) -> str:
        return f"; {self.count} masks in {self.folder}" if self.count else ""


class BoxWriter:
    """Per image: the picture with its boxes drawn, and its boxes as Pascal VOC XML."""

    def __init__(self, predictor: Predictor, folder: str | Path) -> None:
        from fishbear.plots import palette

        self.folder = Path(folder)
        self.count = 0
        self.colours = [tuple(int(v) for v in c) for c in palette(len(predictor.classes))]
        self.classes = list(predictor.classes)

    def write(self, result: dict, stem: str, image: Path | np.ndarray) -> dict[str, str]:
        """``image`` is the file (the XML points at it) or a video frame (saved beside the XML)."""
        from PIL import Image, ImageDraw

        from fishbear.data.readers_voc import voc_xml
        from fishbear.io import atomic_write, atomic_write_text

        if isinstance(image, Path):
            picture, source = Image.open(image).convert("RGB"), image
        else:
            picture, source = Image.fromarray(image), self.folder / f"{stem}.jpg"
            atomic_write(source, lambda handle: picture.save(handle, format="JPEG", quality=95))
        drawn = picture.copy()
        pen = ImageDraw.Draw(drawn)
        width = max(2, round(max(drawn.size) / 300))
        for box in result["boxes"]:
            colour = self.colours[self.classes.index(box["label"]) % len(self.colours)]
            pen.rectangle(box["box"], outline=colour, width=width)
            pen.text((box["box"][0] + width, box["box"][1] + width), f"{box['label']} {box['score']:.2f}", fill=colour)
        drawn_path = self.folder / f"{stem}.boxes.jpg"
        atomic_write(drawn_path, lambda handle: drawn.save(handle, format="JPEG", quality=90))
        xml = voc_xml(source.name, picture.width, picture.height, [(b["label"], b["box"]) for b in result["boxes"]],
                      folder=source.parent.name, path=str(source.resolve()))
        xml_path = atomic_write_text(self.folder / f"{stem}.xml", xml)
        self.count += 1
        return {"drawn": str(drawn_path), "voc_xml": str(xml_path)}

    def note(self) -> str:
        return f"; boxes drawn and as VOC XML for {self.count} images in {self.folder}" if self.count else ""


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _predict_video(video: Path, args: dict[str, str], batch_size: int) -> Path:
    predictor = _predictor(args)
    writer = output_writer(predictor, args, video.parent, video.stem)
    frames = ((frame, frame.image) for frame in read_frames(video, int(args["every"])))
    rows = []
    seen = 0
    for frame, result in predictor.predict_stream(frames, batch_size):
        print(f"{video.name}@{frame.time:.3f}s\tframe {frame.index}\t{result['summary']}")
        extra = writer.write(result, f"frame_{frame.index:06d}", frame.image)
        rows += [{"frame": str(frame.index), "time": f"{frame.time:.3f}", **extra, **cells}
                 for cells in result.get("rows", [result["columns"]])]
        seen += 1
    if not rows:
        raise DataError(f"{video} yielded no frames.")
    output = Path(args["output"]) if args["output"] else video.with_suffix(".predictions.csv")
    _write_csv(output, rows)
    print(f"Predictions for {seen} frames of {video}: {output}" + writer.note())
    return output


if __name__ == "__main__":
    main()
