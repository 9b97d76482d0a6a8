"""``python -m fishbear.frames VIDEO --out DIR [--every N] [--sort-with CKPT] [--enhance]``

Cuts a video into numbered JPEG frames (``frames.csv`` holds each frame's number and time). With
``--sort-with`` a trained classifier files each frame into ``DIR/<predicted class>/``, or a
trained detector into ``DIR/<class>/`` when it finds a box scored ``--score`` or more and
``DIR/no_<class>/`` when not (``fish`` / ``no_fish``; the boxes go into the CSV): the automated
first pass of the fish video-trap exercise, after which a person only reviews the frames whose
confidence is below ``--review-below`` (marked in the CSV), instead of all of them.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from fishbear.cli import user_errors_exit
from fishbear.errors import DataError

SORTING_KINDS = ("classify", "detect")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fishbear.frames", description=__doc__.split("\n\n")[1])
    parser.add_argument("video", type=Path, help="the video file (anything FFmpeg reads: mp4, avi, mov, ...)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the frames and frames.csv")
    parser.add_argument("--every", type=int, default=1, help="keep every N-th frame (default 1: all)")
    parser.add_argument("--sort-with", type=Path, default=None, metavar="CKPT",
                        help="a classification checkpoint (frames into OUT/<predicted class>/) or a detection "
                             "checkpoint (frames into OUT/<class>/ or OUT/no_<class>/)")
    parser.add_argument("--score", type=float, default=None, metavar="S",
                        help="with a detector: a box scored S or more means found (default: the checkpoint's, 0.5)")
    parser.add_argument("--review-below", type=float, default=0.8, metavar="P",
                        help="with --sort-with: mark frames whose confidence is below P for review (default 0.8)")
    parser.add_argument("--enhance", action="store_true",
                        help="grey-world white balance + CLAHE before saving (and before classifying)")
    parser.add_argument("--device", default="cpu", help="device for --sort-with (cpu, cuda)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    return parser


def _save_jpeg(image, path: Path, quality: int) -> None:
    from PIL import Image

    from fishbear.io import atomic_write

    atomic_write(path, lambda handle: Image.fromarray(image).save(handle, format="JPEG", quality=quality))


@user_errors_exit
def main(argv: list[str] | None = None) -> Path:
    from tqdm.auto import tqdm

    from fishbear.io import atomic_write_text
    from fishbear.video import Frame, enhance, frame_count, read_frames

    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.every < 1:
        raise DataError(f"--every must be 1 or more, got {args.every}")
    total = frame_count(args.video)
    wanted = None if total is None else (total + args.every - 1) // args.every
    width = max(6, len(str(total or 0)))

    def frames() -> Iterator[Frame]:
        for frame in read_frames(args.video, args.every):
            yield Frame(frame.index, frame.time, enhance(frame.image)) if args.enhance else frame

    predictor = None
    if args.sort_with is not None:
        from fishbear.inference import Predictor

        predictor = Predictor.from_checkpoint(args.sort_with, device=args.device)
        if predictor.kind not in SORTING_KINDS:
            raise DataError(f"--sort-with {args.sort_with} is a '{predictor.kind}' checkpoint; frames are sorted by a "
                            f"classifier or a detector ({', '.join(SORTING_KINDS)}).")
        if args.score is not None:
            predictor.meta["score_threshold"] = args.score
        results = predictor.predict_stream(((frame, frame.image) for frame in frames()), args.batch_size)
    else:
        results = ((frame, None) for frame in frames())

    out: Path = args.out
    rows: list[list[str]] = []
    counts: Counter[str] = Counter()
    review = 0
    for frame, result in tqdm(results, total=wanted, unit="frame", desc=args.video.name, disable=None):
        name = f"frame_{frame.index:0{width}d}.jpg"
        row = [str(frame.index), f"{frame.time:.3f}"]
        if result is None:
            relative = Path(name)
        else:
            relative = Path(result["label"]) / name
            doubtful = result["probability"] < args.review_below
            review += doubtful
            counts[result["label"]] += 1
            row += [result["label"], f"{result['probability']:.4f}", "yes" if doubtful else ""]
            if predictor.kind == "detect":
                row.append(" ".join(f"{b['label']}:{b['score']:.2f}:{','.join(f'{v:.0f}' for v in b['box'])}"
                                    for b in result["boxes"]))
        _save_jpeg(frame.image, out / relative, args.quality)
        rows.append(row[:2] + [relative.as_posix()] + row[2:])
    if not rows:
        raise DataError(f"{args.video} yielded no frames.")

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["frame", "time", "file"] + (["class", "confidence", "review"] if predictor else [])
    if predictor is not None and predictor.kind == "detect":
        header.append("boxes")  # label:score:xmin,ymin,xmax,ymax in the frame's pixels, space-separated
    writer.writerow(header)
    writer.writerows(rows)
    table = atomic_write_text(out / "frames.csv", buffer.getvalue())
    print(f"{len(rows)} frames of {args.video} written to {out}; frame numbers and times in {table}")
    if predictor is not None:
        spread = ", ".join(f"{label}: {n}" for label, n in sorted(counts.items()))
        print(f"Sorted by {args.sort_with}: {spread}. {review} frames below confidence {args.review_below} "
              "are marked review=yes in the CSV.")
    return table


if __name__ == "__main__":
    main()
