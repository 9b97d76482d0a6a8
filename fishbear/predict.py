"""``python -m fishbear.predict ckpt=PATH input=IMAGE|FOLDER|VIDEO [output=CSV] [device=cpu] [every=N]``

Prints one line per image or video frame and writes them as CSV: to ``output``, or beside the
input (``<folder>/predictions.csv``, ``<stem>.predictions.csv``). The columns follow the
checkpoint's kind: class and probabilities; tags above their thresholds and every tag's
probability; each class's share of the pixels; point coordinates in the image's own pixels.
Segmentation also writes one palette PNG mask per image, ``<masks>/<stem>_P.png`` (``masks``
defaults to ``predicted_masks/`` beside the input), at the image's own size. For a video,
``every=N`` reads every N-th frame.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from fishbear.cli import user_errors_exit
from fishbear.data.images import is_image_file
from fishbear.errors import DataError
from fishbear.inference import Predictor
from fishbear.io import atomic_write_text
from fishbear.video import is_video_file, read_frames


USAGE = ("python -m fishbear.predict ckpt=PATH input=IMAGE|FOLDER|VIDEO [output=CSV] [device=cpu|cuda] "
         "[batch_size=32] [every=1] [masks=DIR]")


def _parse(argv: list[str]) -> dict[str, str]:
    args: dict[str, str] = {"device": "cpu", "batch_size": "32", "output": "", "every": "1", "masks": ""}
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
    return args


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
    predictor = Predictor.from_checkpoint(args["ckpt"], device=args["device"])
    masks = MaskWriter(predictor, args["masks"] or (source if source.is_dir() else source.parent) / "predicted_masks")
    rows = []
    for path, result in predictor.predict_files(files, batch_size):
        print(f"{path}\t{result['summary']}")
        rows.append({"file": str(path), **masks.write(result, path.stem), **result["columns"]})
    output = Path(args["output"]) if args["output"] else default_out
    _write_csv(output, rows)
    print(f"Predictions for {len(files)} images: {output}" + masks.note())
    return output


class MaskWriter:
    """Palette PNGs for segmentation checkpoints (a no-op for other kinds); colours as in the report."""

    def __init__(self, predictor: Predictor, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.count = 0
        self.colours = None
        if predictor.kind == "segment":
            from fishbear.plots import palette

            self.colours = palette(len(predictor.classes), predictor.meta.get("void_index")).ravel().tolist()

    def write(self, result: dict, stem: str) -> dict[str, str]:
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


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _predict_video(video: Path, args: dict[str, str], batch_size: int) -> Path:
    predictor = Predictor.from_checkpoint(args["ckpt"], device=args["device"])
    masks = MaskWriter(predictor, args["masks"] or video.parent / f"{video.stem}_masks")
    frames = ((frame, frame.image) for frame in read_frames(video, int(args["every"])))
    rows = []
    for frame, result in predictor.predict_stream(frames, batch_size):
        print(f"{video.name}@{frame.time:.3f}s\tframe {frame.index}\t{result['summary']}")
        rows.append({"frame": str(frame.index), "time": f"{frame.time:.3f}",
                     **masks.write(result, f"frame_{frame.index:06d}"), **result["columns"]})
    if not rows:
        raise DataError(f"{video} yielded no frames.")
    output = Path(args["output"]) if args["output"] else video.with_suffix(".predictions.csv")
    _write_csv(output, rows)
    print(f"Predictions for {len(rows)} frames of {video}: {output}" + masks.note())
    return output


if __name__ == "__main__":
    main()
