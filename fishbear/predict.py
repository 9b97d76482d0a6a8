"""``python -m fishbear.predict ckpt=PATH input=IMAGE|FOLDER|VIDEO [output=CSV] [device=cpu] [every=N]``

Prints one line per image or video frame (file or frame and time, class, probability) and writes
them as CSV: to ``output``, or beside the input (``<folder>/predictions.csv``,
``<stem>.predictions.csv``). For a video, ``every=N`` classifies every N-th frame.
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
         "[batch_size=32] [every=1]")


def _parse(argv: list[str]) -> dict[str, str]:
    args: dict[str, str] = {"device": "cpu", "batch_size": "32", "output": "", "every": "1"}
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
    rows = []
    for path, result in predictor.predict_files(files, batch_size):
        print(f"{path}\t{result['label']}\t{result['probability']:.4f}")
        rows.append([str(path), *_result_cells(result, predictor.classes)])
    output = Path(args["output"]) if args["output"] else default_out
    _write_csv(output, ["file", *_result_header(predictor.classes)], rows)
    print(f"Predictions for {len(files)} images: {output}")
    return output


def _result_header(classes: list[str]) -> list[str]:
    return ["label", "probability", *[f"p_{c}" for c in classes]]


def _result_cells(result: dict, classes: list[str]) -> list[str]:
    return [result["label"], f"{result['probability']:.6f}", *[f"{result['probabilities'][c]:.6f}" for c in classes]]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _predict_video(video: Path, args: dict[str, str], batch_size: int) -> Path:
    predictor = Predictor.from_checkpoint(args["ckpt"], device=args["device"])
    frames = ((frame, frame.image) for frame in read_frames(video, int(args["every"])))
    rows = []
    for frame, result in predictor.predict_stream(frames, batch_size):
        print(f"{video.name}@{frame.time:.3f}s\tframe {frame.index}\t{result['label']}\t{result['probability']:.4f}")
        rows.append([str(frame.index), f"{frame.time:.3f}", *_result_cells(result, predictor.classes)])
    if not rows:
        raise DataError(f"{video} yielded no frames.")
    output = Path(args["output"]) if args["output"] else video.with_suffix(".predictions.csv")
    _write_csv(output, ["frame", "time", *_result_header(predictor.classes)], rows)
    print(f"Predictions for {len(rows)} frames of {video}: {output}")
    return output


if __name__ == "__main__":
    main()
