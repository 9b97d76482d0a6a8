"""``python -m fishbear.frames video=VIDEO out=DIR [every=N] [sort_with=CKPT] [enhance=true]``
(Hydra overrides of ``conf/frames.yaml``).

Cuts a video into numbered JPEG frames (``frames.csv`` holds each frame's number and time). With
``sort_with`` a trained classifier files each frame into ``DIR/<predicted class>/``, or a trained
detector into ``DIR/<class>/`` when it finds a box scored ``score`` or more and
``DIR/no_<class>/`` when not (``fish`` / ``no_fish``; the boxes go into the CSV): the automated
first pass of the fish video-trap exercise, after which a person only reviews the frames whose
confidence is below ``review_below`` (marked in the CSV), instead of all of them.
"""

from __future__ import annotations

import csv
import io
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig

from fishbear.cli import check_ranges, compose_cli, user_errors_exit
from fishbear.errors import DataError

USAGE = ("python -m fishbear.frames video=VIDEO out=DIR [every=1] [sort_with=CKPT] [score=0.5] [review_below=0.8] "
         "[enhance=true] [device=cpu] [batch_size=32] [quality=95]")


def folder_name(label: str) -> str:
    """A class name as one folder name under ``out``: the names come from the checkpoint, and a
    shared checkpoint's ``../../x`` must not write outside it."""
    name = "".join("_" if ch in "/\\" or ord(ch) < 32 else ch for ch in str(label)).strip()
    name = name.lstrip(".") or "_"
    return name


def _save_jpeg(image, path: Path, quality: int) -> None:
    from PIL import Image

    from fishbear.io import atomic_write

    atomic_write(path, lambda handle: Image.fromarray(image).save(handle, format="JPEG", quality=quality))


@user_errors_exit
def main(argv: list[str] | None = None) -> Path:
    return cut(check_ranges(compose_cli("frames", sys.argv[1:] if argv is None else argv, USAGE),
                            counts=("every", "batch_size", "quality"), fractions=("score", "review_below")))


def cut(args: DictConfig) -> Path:
    """Cut (and sort) ``args.video`` into ``args.out``; returns the path of ``frames.csv``."""
    from tqdm.auto import tqdm

    from fishbear.io import atomic_write_text
    from fishbear.video import Frame, enhance, frame_count, read_frames

    video, out = Path(str(args.video)), Path(str(args.out))
    total = frame_count(video)
    wanted = None if total is None else (total + args.every - 1) // args.every
    width = max(6, len(str(total or 0)))

    def frames() -> Iterator[Frame]:
        for frame in read_frames(video, args.every):
            yield Frame(frame.index, frame.time, enhance(frame.image)) if args.enhance else frame

    predictor = None
    if args.sort_with is not None:
        from fishbear.inference import Predictor
        from fishbear.kinds import KINDS

        predictor = Predictor.from_checkpoint(args.sort_with, device=args.device)
        if not predictor.kind.sorts_frames:
            sorting = ", ".join(name for name, kind in KINDS.items() if kind.sorts_frames)
            raise DataError(f"sort_with={args.sort_with} is a '{predictor.kind.name}' checkpoint; frames are sorted by "
                            f"a classifier or a detector ({sorting}).")
        if args.score is not None:
            predictor.meta["score_threshold"] = args.score
        results = predictor.predict_stream(((frame, frame.image) for frame in frames()), args.batch_size)
    else:
        results = ((frame, None) for frame in frames())

    rows: list[list[str]] = []
    counts: Counter[str] = Counter()
    review = 0
    extra_columns: list[str] = []
    for frame, result in tqdm(results, total=wanted, unit="frame", desc=video.name, disable=None):
        name = f"frame_{frame.index:0{width}d}.jpg"
        row = [str(frame.index), f"{frame.time:.3f}"]
        if result is None:
            relative = Path(name)
        else:
            relative = Path(folder_name(result["label"])) / name
            doubtful = result["probability"] < args.review_below
            review += doubtful
            counts[result["label"]] += 1
            row += [result["label"], f"{result['probability']:.4f}", "yes" if doubtful else ""]
            extra = predictor.kind.frame_columns(result)  # detection: the frame's boxes
            extra_columns = list(extra)
            row += list(extra.values())
        _save_jpeg(frame.image, out / relative, args.quality)
        rows.append(row[:2] + [relative.as_posix()] + row[2:])
    if not rows:
        raise DataError(f"{video} yielded no frames.")

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["frame", "time", "file"] + (["class", "confidence", "review", *extra_columns] if predictor else [])
    writer.writerow(header)
    writer.writerows(rows)
    table = atomic_write_text(out / "frames.csv", buffer.getvalue())
    print(f"{len(rows)} frames of {video} written to {out}; frame numbers and times in {table}")
    if predictor is not None:
        spread = ", ".join(f"{label}: {n}" for label, n in sorted(counts.items()))
        print(f"Sorted by {args.sort_with}: {spread}. {review} frames below confidence {args.review_below} "
              "are marked review=yes in the CSV.")
    return table


if __name__ == "__main__":
    main()
