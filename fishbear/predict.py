"""``python -m fishbear.predict ckpt=PATH input=IMAGE|FOLDER [output=CSV] [device=cpu]``

Prints one line per image (file, class, probability) and writes them as CSV: to ``output``, or
beside the input (``<folder>/predictions.csv``, ``<image stem>.predictions.csv``).
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from fishbear.cli import user_errors_exit
from fishbear.errors import DataError


def _parse(argv: list[str]) -> dict[str, str]:
    args: dict[str, str] = {"device": "cpu", "batch_size": "32", "output": ""}
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in ("ckpt", "input", "output", "device", "batch_size"):
            raise DataError(f"unknown argument {item!r}; usage: python -m fishbear.predict ckpt=PATH "
                            "input=IMAGE|FOLDER [output=CSV] [device=cpu|cuda] [batch_size=32]")
        args[key] = value
    for key in ("ckpt", "input"):
        if not args.get(key):
            raise DataError(f"{key}= is required; usage: python -m fishbear.predict ckpt=PATH input=IMAGE|FOLDER")
    return args


@user_errors_exit
def main(argv: list[str] | None = None) -> Path:
    from fishbear.data.images import is_image_file
    from fishbear.inference import Predictor
    from fishbear.io import atomic_write_text

    args = _parse(sys.argv[1:] if argv is None else argv)
    source = Path(args["input"])
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and is_image_file(p))
        default_out = source / "predictions.csv"
    elif source.is_file():
        files, default_out = [source], source.with_suffix(".predictions.csv")
    else:
        raise DataError(f"input={source} is neither an image file nor a folder.")
    if not files:
        raise DataError(f"{source} holds no image files.")
    predictor = Predictor.from_checkpoint(args["ckpt"], device=args["device"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "label", "probability", *[f"p_{c}" for c in predictor.classes]])
    for path, result in predictor.predict_files(files, int(args["batch_size"])):
        print(f"{path}\t{result['label']}\t{result['probability']:.4f}")
        writer.writerow([str(path), result["label"], f"{result['probability']:.6f}",
                         *[f"{result['probabilities'][c]:.6f}" for c in predictor.classes]])
    output = Path(args["output"]) if args["output"] else default_out
    atomic_write_text(output, buffer.getvalue())
    print(f"Predictions for {len(files)} images: {output}")
    return output


if __name__ == "__main__":
    main()
