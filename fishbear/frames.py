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

import io
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from fishbear.core.decoding import as_rgb
from fishbear.core.errors import ConfigError, DataError
from fishbear.engine.commandline import check_ranges, compose_cli, user_errors_exit
from fishbear.reports.events import contact_sheet, events_csv
from fishbear.reports.frame_table import FrameRow, VisitSettings, frames_csv, mark_by_confidence, mark_by_visits

USAGE = ("fishbear frames video=VIDEO out=DIR [every=1] [sort_with=CKPT] [score=0.5] [review_below=0.8] "
         "[enhance=true] [adapt=true] [device=cpu] [batch_size=32] [quality=95] [overwrite=false]")
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
    from fishbear.core.outputs import OutputFiles

    video, out = _video(args), Path(str(args.out))
    outputs = OutputFiles(bool(args.overwrite), way_out="another out=")
    outputs.check_folder(out, _ours_to_write)  # before the video is read: a clash costs nothing
    if args.adapt:
        args.sort_with = str(_adapted(args, video, out))
    predictor = _sorter(args)
    target = None
    if predictor is not None:
        # None (several classes, none named as an absence): no visits, review by the frame's own confidence
        target = args.events.target or predictor.kind.event_target(list(predictor.meta.classes))
    rows, boxes = _write_frames(args, video, out, predictor, target, outputs)
    note = _mark_and_note(args, rows, boxes, target, out, outputs) if predictor is not None else ""
    table = outputs.write_text(out / "frames.csv", frames_csv(rows, target))
    outputs.close()
    print(f"{len(rows)} frames of {video} written to {out}; frame numbers and times in {table}{outputs.note()}")
    if note:
        print(note)
    return table


def _video(args: DictConfig) -> Path:
    from fishbear.data.video import is_video_file

    video = Path(str(args.video))
    if not video.is_file():
        raise DataError(f"video={video} " + ("is a folder" if video.is_dir() else "does not exist")
                        + "; give a video file (mp4, avi, mov, ... anything FFmpeg reads).")
    if not is_video_file(video):
        raise DataError(f"video={video} is not a video file by its suffix; give an mp4, avi, mov, mkv ... file.")
    return video


def _adapted(args: DictConfig, video: Path, out: Path) -> Path:
    """``adapt=true``: the ``sort_with`` checkpoint adapted to this very video by ``fishbear adapt``'s
    defaults, written to ``OUT/adapted/`` (the source run is only read); the path of the new checkpoint."""
    from fishbear.engine.adapt.adapted import adapt_run
    from fishbear.engine.commandline import compose_cli

    if args.sort_with is None:
        raise ConfigError("adapt=true adapts the sort_with= checkpoint to this video; give sort_with=RUN/checkpoints/best.ckpt.")
    adapt_run(compose_cli("adapt", [f"ckpt={args.sort_with}", f"video={video}", f"every={args.every}",
                                f"out={out / 'adapted'}", f"device={args.device}", f"overwrite={args.overwrite}"],
                          "fishbear frames ... sort_with=CKPT adapt=true"))
    return out / "adapted" / "checkpoints" / "best.ckpt"


def _sorter(args: DictConfig) -> Any:
    """The checkpoint's predictor when ``sort_with`` is given: a classifier or a detector."""
    if args.sort_with is None:
        return None
    from fishbear.engine.inference import Predictor
    from fishbear.kinds import KINDS

    predictor = Predictor.from_checkpoint(args.sort_with, device=args.device,
                                          score_threshold=None if args.score is None else float(args.score))
    if not predictor.kind.sorts_frames:
        sorting = ", ".join(name for name, kind in KINDS.items() if kind.sorts_frames)
        raise DataError(f"sort_with={args.sort_with} is a '{predictor.kind.name}' checkpoint; frames are sorted by "
                        f"a classifier or a detector ({sorting}).")
    return predictor


def _write_frames(args: DictConfig, video: Path, out: Path, predictor: Any, target: str | None,
                  outputs: Any) -> tuple[list[FrameRow], dict[int, list[dict]]]:
    """Every kept frame written (into its class folder when sorted); its row, and a detector's boxes by frame."""
    from tqdm.auto import tqdm

    from fishbear.data.video import enhance, frame_count, read_frames

    total = frame_count(video)
    width = max(6, len(str(total or 0)))
    frames = read_frames(video, args.every)
    results = ((frame, None) for frame in frames) if predictor is None else \
        predictor.predict_stream(((frame, frame.image) for frame in frames), args.batch_size)
    rows: list[FrameRow] = []
    boxes: dict[int, list[dict]] = {}
    wanted = None if total is None else (total + args.every - 1) // args.every
    for frame, result in tqdm(results, total=wanted, unit="frame", desc=video.name, disable=None):
        name = f"frame_{frame.index:0{width}d}.jpg"
        row = FrameRow(frame.index, frame.time, name)
        if result is not None:
            row.file = f"{folder_name(result['label'])}/{name}"
            row.label, row.confidence = result["label"], float(result["probability"])
            row.score = predictor.kind.event_score(result, target) if target else None
            row.extra = dict(predictor.kind.frame_columns(result))  # detection: the frame's boxes
            boxes[frame.index] = result.get("boxes", [])
        # enhance=true changes the saved frames; the model sees what it was trained on (its preprocess)
        saved = enhance(frame.image) if args.enhance else frame.image
        outputs.write_bytes(out / row.file, _jpeg(saved, args.quality))
        rows.append(row)
    if not rows:
        raise DataError(f"{video} yielded no frames.")
    return rows, boxes


def _mark_and_note(args: DictConfig, rows: list[FrameRow], boxes: dict[int, list[dict]], target: str | None,
                   out: Path, outputs: Any) -> str:
    """Review marks (and, with a target, the visits: events.csv and events.png); the line said after."""
    spread = ", ".join(f"{label}: {n}" for label, n in sorted(Counter(row.label for row in rows).items()))
    if target is None:
        review = mark_by_confidence(rows, args.review_below)
        return (f"Sorted by {args.sort_with}: {spread}. {review} frames below confidence {args.review_below} are "
                f"marked review=yes in the CSV. For visits (events.csv), name the class: events.target=<class>.")
    visits = VisitSettings(int(args.events.smooth), float(args.events.threshold), int(args.events.min_frames))
    events = mark_by_visits(rows, args.review_below, visits)
    outputs.write_text(out / "events.csv", events_csv(events))
    sheet = _write_contact_sheet(events, rows, boxes, out, str(target), outputs)
    review = sum(row.review for row in rows)
    return (f"Sorted by {args.sort_with}: {spread}. {review} frames marked review=yes in the CSV (smoothed "
            f"{target} score over {visits.smooth} frames weak, or against the frame's own call). "
            f"{len(events)} {target} visit(s) in {out / 'events.csv'}" + (f", peak frames in {sheet}" if sheet else "") + ".")


def _write_contact_sheet(events: list, rows: list[FrameRow], boxes: dict[int, list[dict]], out: Path,
                         target: str, outputs: Any) -> Path | None:
    """``events.png``: each visit's peak frame, read back from the frames written."""
    if not events:
        return None
    from PIL import Image

    from fishbear.reports.plots import figure_png

    files = {row.frame: out / row.file for row in rows}
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
