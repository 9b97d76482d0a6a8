"""``python -m fishbear.frames video=VIDEO out=DIR [every=N] [sort_with=CKPT] [enhance=true]``
(Hydra overrides of ``conf/frames.yaml``).

Cuts a video into numbered JPEG frames (``frames.csv`` holds each frame's number and time). With
``sort_with`` a trained classifier files each frame into ``DIR/<predicted class>/``, or a trained
detector into ``DIR/<class>/`` when it finds a box scored ``score`` or more and
``DIR/no_<class>/`` when not (``fish`` / ``no_fish``; the boxes go into the CSV): the automated
first pass of the fish video-trap exercise, after which a person only reviews the frames whose
confidence is below ``review_below`` (marked in the CSV), instead of all of them.

A sorted video also gets ``events.csv``: one row per visit of the target class (``fish``), from
the per-frame scores smoothed over ``events.smooth`` frames (``fishbear.reports.events``), and
``events.png``, the visits' peak frames (with a detector's boxes). The review marks come from the
smoothed scores: weak evidence either way, or smoothed evidence against the frame's own call.

``out`` may hold the user's own files: a frame, CSV or picture there that fishbear did not write
(:mod:`fishbear.core.outputs`) stops the command before the video is read; its own earlier frames are
written again. ``overwrite=true`` replaces any.
"""

from __future__ import annotations

import csv
import io
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from fishbear.core.decoding import as_rgb
from fishbear.core.errors import DataError
from fishbear.engine.commandline import check_ranges, compose_cli, user_errors_exit
from fishbear.reports.events import contact_sheet, events_csv, find_events, smooth

USAGE = ("fishbear frames video=VIDEO out=DIR [every=1] [sort_with=CKPT] [score=0.5] [review_below=0.8] "
         "[enhance=true] [device=cpu] [batch_size=32] [quality=95] [overwrite=false]")
# what frames writes into out (and so what an existing file there is checked against)
WRITTEN = ("frames.csv", "events.csv", "events.png")


def folder_name(label: str) -> str:
    """A class name as one folder name under ``out``: the names come from the checkpoint, and a
    shared checkpoint's ``../../x`` must not write outside it."""
    name = "".join("_" if ch in "/\\" or ord(ch) < 32 else ch for ch in str(label)).strip()
    name = name.lstrip(".") or "_"
    return name


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _ours_to_write(path: Path) -> bool:
    return path.name in WRITTEN or (path.name.startswith("frame_") and path.suffix == ".jpg")


@user_errors_exit
def main(argv: list[str] | None = None) -> Path:
    return cut(check_ranges(compose_cli("frames", sys.argv[1:] if argv is None else argv, USAGE),
                            counts=("every", "batch_size", "quality", "events.smooth", "events.min_frames"),
                            fractions=("score", "review_below", "events.threshold")))


def cut(args: DictConfig) -> Path:
    """Cut (and sort) ``args.video`` into ``args.out``; returns the path of ``frames.csv``."""
    from tqdm.auto import tqdm

    from fishbear.core.outputs import OutputFiles
    from fishbear.data.video import Frame, enhance, frame_count, is_video_file, read_frames

    video, out = Path(str(args.video)), Path(str(args.out))
    if not video.is_file():
        raise DataError(f"video={video} " + ("is a folder" if video.is_dir() else "does not exist")
                        + "; give a video file (mp4, avi, mov, ... anything FFmpeg reads).")
    if not is_video_file(video):
        raise DataError(f"video={video} is not a video file by its suffix; give an mp4, avi, mov, mkv ... file.")
    outputs = OutputFiles(bool(args.overwrite), way_out="another out=")
    outputs.check_folder(out, _ours_to_write)  # before the video is read: a clash costs nothing
    total = frame_count(video)
    wanted = None if total is None else (total + args.every - 1) // args.every
    width = max(6, len(str(total or 0)))

    def frames() -> Iterator[Frame]:
        yield from read_frames(video, args.every)

    predictor = None
    if args.sort_with is not None:
        from fishbear.engine.inference import Predictor
        from fishbear.kinds import KINDS

        predictor = Predictor.from_checkpoint(args.sort_with, device=args.device,
                                              score_threshold=None if args.score is None else float(args.score))
        if not predictor.kind.sorts_frames:
            sorting = ", ".join(name for name, kind in KINDS.items() if kind.sorts_frames)
            raise DataError(f"sort_with={args.sort_with} is a '{predictor.kind.name}' checkpoint; frames are sorted by "
                            f"a classifier or a detector ({sorting}).")
        results = predictor.predict_stream(((frame, frame.image) for frame in frames()), args.batch_size)
    else:
        results = ((frame, None) for frame in frames())

    rows: list[list[str]] = []
    counts: Counter[str] = Counter()
    extra_columns: list[str] = []
    scores: list[float] = []
    found_boxes: dict[int, list[dict]] = {}
    target = None
    if predictor is not None:
        # None (several classes, none named as an absence): no visits, review by the frame's own confidence
        target = args.events.target or predictor.kind.event_target(list(predictor.meta.classes))
    for frame, result in tqdm(results, total=wanted, unit="frame", desc=video.name, disable=None):
        name = f"frame_{frame.index:0{width}d}.jpg"
        row = [str(frame.index), f"{frame.time:.3f}"]
        if result is None:
            relative = Path(name)
        else:
            relative = Path(folder_name(result["label"])) / name
            counts[result["label"]] += 1
            scores.append(predictor.kind.event_score(result, target) if target else result["probability"])
            found_boxes[frame.index] = result.get("boxes", [])
            row += [result["label"], f"{result['probability']:.4f}"]
            extra = predictor.kind.frame_columns(result)  # detection: the frame's boxes
            extra_columns = list(extra)
            row += list(extra.values())
        # enhance=true changes the saved frames; the model sees what it was trained on (its preprocess)
        saved = enhance(frame.image) if args.enhance else frame.image
        outputs.write_bytes(out / relative, _jpeg(saved, args.quality))
        rows.append(row[:2] + [relative.as_posix()] + row[2:])
    if not rows:
        raise DataError(f"{video} yielded no frames.")

    header = ["frame", "time", "file"]
    review = 0
    note = ""
    spread = ", ".join(f"{label}: {n}" for label, n in sorted(counts.items()))
    if predictor is not None and target is None:
        for row, confidence in zip(rows, scores):
            review += confidence < args.review_below
            row[5:5] = ["yes" if confidence < args.review_below else ""]
        header += ["class", "confidence", "review", *extra_columns]
        note = (f"Sorted by {args.sort_with}: {spread}. {review} frames below confidence {args.review_below} are "
                f"marked review=yes in the CSV. For visits (events.csv), name the class: events.target=<class>.")
    elif predictor is not None:
        smoothed = smooth(np.array(scores), args.events.smooth)
        for row, score, raw in zip(rows, smoothed, scores):
            # doubtful: the smoothed evidence is weak either way, or it disagrees with the frame's own call
            seen = score >= args.events.threshold
            doubtful = max(score, 1 - score) < args.review_below or seen != (raw >= args.events.threshold)
            review += doubtful
            row[5:5] = [f"{raw:.4f}", f"{score:.4f}", "yes" if doubtful else ""]
        header += ["class", "confidence", f"score_{target}", f"smoothed_{target}", "review", *extra_columns]
        events = find_events([int(r[0]) for r in rows], [float(r[1]) for r in rows], smoothed,
                             args.events.threshold, args.events.min_frames)
        outputs.write_text(out / "events.csv", events_csv(events))
        sheet = _write_contact_sheet(events, rows, found_boxes, out, str(target), outputs)
        note = (f"Sorted by {args.sort_with}: {spread}. {review} frames marked review=yes in the CSV (smoothed "
                f"{target} score over {args.events.smooth} frames weak, or against the frame's own call). "
                f"{len(events)} {target} visit(s) in {out / 'events.csv'}" + (f", peak frames in {sheet}" if sheet else "") + ".")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    table = outputs.write_text(out / "frames.csv", buffer.getvalue())
    outputs.close()
    print(f"{len(rows)} frames of {video} written to {out}; frame numbers and times in {table}{outputs.note()}")
    if note:
        print(note)
    return table


def _write_contact_sheet(events: list, rows: list[list[str]], boxes: dict[int, list[dict]], out: Path,
                         target: str, outputs: Any) -> Path | None:
    """``events.png``: each visit's peak frame, read back from the frames written."""
    if not events:
        return None
    from PIL import Image

    from fishbear.reports.plots import figure_png

    files = {int(row[0]): out / row[2] for row in rows}
    images = {}
    for event in events[:24]:
        with Image.open(files[event.peak_frame]) as image:
            images[event.peak_frame] = as_rgb(image)
    return outputs.write_bytes(out / "events.png", figure_png(contact_sheet(events, images, boxes, target)))


def cli(argv: list[str]) -> int:
    """``fishbear frames ...`` and ``python -m fishbear.frames ...``."""
    main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
