"""``python -m fishbear.predict ckpt=PATH input=IMAGE|FOLDER|VIDEO [output=CSV] [device=cpu] [every=N]``
(Hydra overrides of ``conf/predict.yaml``).

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

Nothing the user wrote is replaced (:mod:`fishbear.core.outputs`): a CSV, mask or label file that
fishbear did not write, or that was changed since (a VOC file corrected in LabelImg), stops the
command before any prediction, naming the file; ``overwrite=true`` replaces such files. Files of
images in sub-folders keep their folder (``cam1/img.xml``), so two images of one name never share
a label file.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from fishbear.core.errors import ConfigError, DataError
from fishbear.core.outputs import OutputClash, OutputFiles, refuse_stem_clashes
from fishbear.data.images import image_problem, is_image_file
from fishbear.data.video import is_video_file, read_frames
from fishbear.engine.commandline import check_ranges, compose_cli, user_errors_exit
from fishbear.formats import writable

if TYPE_CHECKING:  # torch loads when a prediction is asked for, not for --help or a mistyped key
    from fishbear.engine.inference import ImagePredictor
    from fishbear.kinds.base import OutputWriter

USAGE = ("fishbear predict ckpt=PATH input=IMAGE|FOLDER|VIDEO [output=CSV] [device=cpu|cuda] "
         f"[batch_size=32] [every=1] [masks=DIR] [boxes=DIR] [format={'|'.join(writable())}] [score=0.5] "
         "[on_bad_image=skip|error] [overwrite=false]")


def _checked(cfg: DictConfig) -> DictConfig:
    if cfg.on_bad_image not in ("skip", "error"):
        raise ConfigError(f"on_bad_image={cfg.on_bad_image}: use skip or error")
    return check_ranges(cfg, counts=("batch_size", "every"), fractions=("score",))


def _predictor(cfg: DictConfig) -> ImagePredictor:
    """The checkpoint's predictor, or an export folder's (onnxruntime); ``score=`` changes a
    detector's threshold for this command only."""
    from fishbear.engine.deploy.exported import open_predictor

    return open_predictor(cfg.ckpt, device=cfg.device, tta=bool(cfg.tta),
                          score_threshold=None if cfg.score is None else float(cfg.score))


@user_errors_exit
def main(argv: list[str] | None = None) -> Path:
    cfg = _checked(compose_cli("predict", sys.argv[1:] if argv is None else argv, USAGE))
    return predict(cfg)


def predict(cfg: DictConfig) -> Path:
    """Predict for ``cfg.input`` and write the CSV (and the kind's files); returns the CSV's path."""
    source = Path(str(cfg.input))
    if not source.exists():
        raise DataError(f"input={source} does not exist; give an image, a folder of images or a video.")
    if source.is_file() and is_video_file(source):
        return _predict_video(source, cfg)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and is_image_file(p))
        default_out = source / "predictions.csv"
    elif source.is_file():
        if not is_image_file(source):
            raise DataError(f"input={source} is neither an image nor a video file (by its suffix); give an image, "
                            "a folder of images or a video.")
        files, default_out = [source], source.with_suffix(".predictions.csv")
    else:
        raise DataError(f"input={source} is neither an image or video file nor a folder.")
    if not files:
        raise DataError(f"{source} holds no image files.")
    outputs = OutputFiles(bool(cfg.overwrite), way_out="another output=, masks= or boxes=")
    output = _csv_path(cfg, default_out, outputs)
    predictor = _predictor(cfg)
    base = source if source.is_dir() else source.parent
    writer = output_writer(predictor, cfg, base, "predicted", outputs)
    if writer is not None:  # not last run's pictures
        files = [p for p in files if writer.folder.resolve() not in p.resolve().parents]
        refuse_stem_clashes(((_key(p, base), p) for p in files), "label files of the key")
    files = _readable(files, predictor, skip=cfg.on_bad_image == "skip")
    rows = []
    with outputs:
        for path, result in predictor.predict_files(files, cfg.batch_size):
            print(f"{path}\t{result['summary']}")
            extra = writer.write(result, _key(path, base), path) if writer is not None else {}
            rows += [{"file": str(path), **extra, **cells} for cells in result.get("rows", [result["columns"]])]
        _write_csv(output, rows, outputs)
        print(f"Predictions for {len(files)} images: {output}" + (writer.note() if writer is not None else "")
              + outputs.note())
    return output


def _key(path: Path, base: Path) -> str:
    """What names an image's output files: its path under the input folder, without suffix."""
    try:
        relative = path.relative_to(base)
    except ValueError:
        relative = Path(path.name)
    return relative.with_suffix("").as_posix()


def _csv_path(cfg: DictConfig, default: Path, outputs: OutputFiles) -> Path:
    """The CSV to write, checked before any work: a ``.csv`` file that is not the user's."""
    output = Path(str(cfg.output)) if cfg.output else default
    if output.is_dir():
        raise OutputClash(f"output={output} is a folder; give the CSV file to write (e.g. output={output / 'predictions.csv'}).")
    if output.suffix.lower() != ".csv":
        raise OutputClash(f"output={output}: the predictions are CSV; give a path ending in .csv.")
    outputs.check(output)
    return output


def _readable(files: list[Path], predictor: ImagePredictor, skip: bool) -> list[Path]:
    """The files that can be answered for: decoded (``skip``: in full, else their header) and of
    sides the model's fit can take (a 1 x 30,000,000 strip cannot be scaled to a square input).
    With ``skip`` the others are named in a warning (one bad file of a thousand does not stop the
    other predictions); else the first is one error naming it."""
    from fishbear.core.geometry import fit_problem
    from fishbear.data.images import header_problem, upright_size

    resize = predictor.meta.resize or predictor.kind.eval_resize
    problems = {}
    for path in files:
        problem = (image_problem if skip else header_problem)(path)
        what = "read as an image"
        if problem is None:
            width, height = upright_size(path)
            problem, what = fit_problem(height, width, predictor.meta.image_size, resize), "fitted to the model"
        if problem is not None:
            if not skip:
                raise DataError(f"{path} cannot be {what} ({problem}). Remove it from input=, or give "
                                "on_bad_image=skip to leave such files out.")
            problems[path] = problem
    shown = "; ".join(f"{path} ({why})" for path, why in list(problems.items())[:5])
    if problems:
        print(f"warning: skipped {len(problems)} file(s) that are no readable image: {shown}", file=sys.stderr)
    kept = [path for path in files if path not in problems]
    if not kept:
        raise DataError(f"none of the {len(files)} image file(s) can be read; the first: {shown}")
    return kept


def output_writer(predictor: ImagePredictor, cfg: DictConfig, beside: Path, prefix: str,
                  outputs: OutputFiles) -> OutputWriter | None:
    """What the kind writes beside the CSV (masks, drawn boxes and VOC XML), into the folder the
    command line names for it (``masks=``, ``boxes=``) or ``<prefix>_<masks|boxes>/`` beside the
    input; its existing files are checked against the output policy before any work."""
    name = predictor.kind.written_files
    if name is None:
        return None
    folder = Path(cfg[name]) if cfg[name] else beside / f"{prefix}_{name}"
    outputs.check_folder(folder)
    return predictor.kind.output_writer(predictor.meta, folder, outputs, label_format=str(cfg.format))


def _write_csv(path: Path, rows: list[dict[str, str]], outputs: OutputFiles) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    outputs.write_text(path, buffer.getvalue())


def _predict_video(video: Path, cfg: DictConfig) -> Path:
    outputs = OutputFiles(bool(cfg.overwrite), way_out="another output=, masks= or boxes=")
    output = _csv_path(cfg, video.with_suffix(".predictions.csv"), outputs)
    predictor = _predictor(cfg)
    writer = output_writer(predictor, cfg, video.parent, video.stem, outputs)
    frames = ((frame, frame.image) for frame in read_frames(video, cfg.every))
    rows = []
    seen = 0
    with outputs:
        for frame, result in predictor.predict_stream(frames, cfg.batch_size):
            print(f"{video.name}@{frame.time:.3f}s\tframe {frame.index}\t{result['summary']}")
            extra = writer.write(result, f"frame_{frame.index:06d}", frame.image) if writer is not None else {}
            rows += [{"frame": str(frame.index), "time": f"{frame.time:.3f}", **extra, **cells}
                     for cells in result.get("rows", [result["columns"]])]
            seen += 1
        if not rows:
            raise DataError(f"{video} yielded no frames.")
        _write_csv(output, rows, outputs)
        print(f"Predictions for {seen} frames of {video}: {output}" + (writer.note() if writer is not None else "")
              + outputs.note())
    return output


def cli(argv: list[str]) -> int:
    """``fishbear predict ...`` and ``python -m fishbear.predict ...``."""
    main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
