"""Fish / no-fish on the video-trap frames, and the automated first pass over footage the model never saw.

The 168 frames of ``../shared/data/fish/video1_output`` are numbered by second of the video
(``video1_frame_<N>.jpg``; ``positive/`` and ``testImages/`` hold fish, ``negative/`` none).
Each protocol trains ``fishbear train`` on some labelled frames and sorts other footage with
``fishbear frames sort_with=...`` from an mp4, as a user would, then scores the fish calls:

- ``time``: train on N <= ``--cut`` (120), sort N > ``--cut`` (48 frames, 32 with fish);
- ``kfold``: ``--folds`` (4) contiguous blocks of the video, each sorted by a model trained on the
  others, ``--gap`` frames dropped on each side of the held-out block;
- ``fullhd``: train on all 168 frames, sort the 33 unlabelled 1920 x 1080 frames of
  ``../shared/data/fish/testFrames`` (most from minutes later), scored against the labels we gave
  them by eye (``fullhd_labels.csv``; how: ``README.md``);
- ``every``: label every 2nd frame, sort the rest: leaks neighbours, kept for contrast.

    python experiments/fish_frames/run.py [--protocol time|kfold|fullhd|every] [--seeds 1,2,3,4,5]
        [--experiment fish_frames] [--shared ../shared/data] [--keep DIR] [fishbear overrides]

The recipe trained is ``experiment=<--experiment>`` (``fishbear/conf/experiment/``); overrides
after the options change it. With several seeds, each seed's figures are printed and the last
lines give the spread over seeds: the mean, the worst seed and a 95% t interval of the mean. The
last line always reads ``fish frames, <protocol>...: ... f1=...``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from fishbear.data.video import write_video

FISH = {"positive": "fish", "testImages": "fish", "negative": "no_fish"}
HERE = Path(__file__).resolve().parent


def labelled_frames(folder: Path) -> dict[int, tuple[Path, str]]:
    frames = {}
    for sub, label in FISH.items():
        for path in (folder / sub).glob("video1_frame_*.jpg"):
            frames[int(re.search(r"_(\d+)\.jpg$", path.name).group(1))] = (path, label)
    return frames


def fullhd_frames(shared: Path) -> list[tuple[Path, str]]:
    """The full-HD frames in video order with the labels given by eye (``fullhd_labels.csv``)."""
    rows = list(csv.DictReader((HERE / "fullhd_labels.csv").open()))
    folder = shared / "fish" / "testFrames"
    return [(folder / row["file"], row["label"]) for row in sorted(rows, key=lambda r: int(r["frame"]))]


def write_layout(train: list[tuple[Path, str]], test: list[tuple[Path, str]], root: Path) -> None:
    """``train/<label>/`` of the labelled frames and ``test/<label>/`` of the sorted ones, as links."""
    for split, items in (("train", train), ("test", test)):
        for path, label in items:
            target = root / split / label / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path.resolve())


def scores(calls: list[bool], truth: list[bool]) -> tuple[float, float, float]:
    """Precision, recall and F1 of the fish calls (0 where undefined)."""
    tp = sum(c and t for c, t in zip(calls, truth))
    fp = sum(c and not t for c, t in zip(calls, truth))
    fn = sum(t and not c for c, t in zip(calls, truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return precision, recall, 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def plans(args: argparse.Namespace) -> list[tuple[str, list[tuple[Path, str]], list[tuple[Path, str]]]]:
    """(name, training frames, frames to sort) per model the protocol trains."""
    frames = labelled_frames(args.shared / "fish" / "video1_output")
    if len(frames) != 168:
        raise SystemExit(f"expected 168 labelled frames under {args.shared}/fish/video1_output, found {len(frames)}")
    numbers = sorted(frames)
    pick = lambda ns: [frames[n] for n in sorted(ns)]  # noqa: E731
    if args.protocol == "kfold":
        bounds = np.linspace(0, len(numbers), args.folds + 1).round().astype(int)
        out = []
        for k in range(args.folds):
            held = numbers[bounds[k]:bounds[k + 1]]
            near = set(numbers[max(0, bounds[k] - args.gap):bounds[k]] + numbers[bounds[k + 1]:bounds[k + 1] + args.gap])
            out.append((f"fold {k} (frames {held[0]}-{held[-1]})", pick(n for n in numbers if n not in held and n not in near),
                        pick(held)))
        return out
    if args.protocol == "time":
        return [(f"time split (frames {args.cut + 1}-{numbers[-1]})", pick(n for n in numbers if n <= args.cut),
                 pick(n for n in numbers if n > args.cut))]
    if args.protocol == "fullhd":
        return [("full-HD frames", pick(numbers), fullhd_frames(args.shared))]
    return [("every 2nd frame labelled (leaky)", pick(n for n in numbers if n % 2 == 0),
             pick(n for n in numbers if n % 2))]


def sort_unseen(train: list[tuple[Path, str]], later: list[tuple[Path, str]], scratch: Path, seed: int,
                args: argparse.Namespace) -> tuple[list[dict], list[bool], dict]:
    """Train on ``train``, sort ``later`` from an mp4 with ``fishbear frames``; its rows, the truth, the report."""
    write_layout(train, [] if args.protocol == "fullhd" else later, scratch / "data")
    images = (np.asarray(Image.open(path).convert("RGB")) for path, _ in later)
    video = write_video(scratch / "later.mp4", images, fps=1)
    run_dir = scratch / "run"
    command = [sys.executable, "-m", "fishbear", "train", f"experiment={args.experiment}", f"data.root={scratch / 'data'}",
               f"seed={seed}", f"data.split_seed={seed}", f"hydra.run.dir={run_dir}", "logger=none", *args.overrides]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    report = json.loads((run_dir / "report.json").read_text())
    sort = [sys.executable, "-m", "fishbear", "frames", f"video={video}", f"out={scratch / 'sorted'}",
            f"sort_with={run_dir / 'checkpoints' / 'best.ckpt'}"]
    subprocess.run(sort, check=True, stdout=subprocess.DEVNULL)
    rows = list(csv.DictReader((scratch / "sorted" / "frames.csv").open()))
    return rows, [label == "fish" for _, label in later], report


def run_seed(seed: int, scratch: Path, args: argparse.Namespace) -> dict:
    calls, smoothed, truth, table, fit = [], [], [], [], 0.0
    for name, train, later in plans(args):
        rows, fold_truth, report = sort_unseen(train, later, scratch / re.sub(r"\W+", "_", name), seed, args)
        target = next(key.removeprefix("smoothed_") for key in rows[0] if key.startswith("smoothed_"))
        fold_calls = [row["class"] == target for row in rows]
        calls += fold_calls
        smoothed += [float(row[f"smoothed_{target}"]) >= 0.5 for row in rows]
        truth += fold_truth
        fit += report["fit_seconds"]
        table += [[path.name, label, row["class"], row[f"score_{target}"], row[f"smoothed_{target}"]]
                  for (path, label), row in zip(later, rows)]
        p, r, f = scores(fold_calls, fold_truth)
        print(f"seed {seed}, {name}: precision={p:.3f} recall={r:.3f} f1={f:.3f} ({sum(fold_truth)} of "
              f"{len(fold_truth)} with fish; fit {report['fit_seconds']:.1f} s)", flush=True)
    with (scratch / "calls.csv").open("w", newline="") as handle:  # each sorted frame's call (azure.py reads it)
        csv.writer(handle).writerows([["file", "truth", "call", "score", "smoothed"], *table])
    p, r, f = scores(calls, truth)
    sp, sr, sf = scores(smoothed, truth)
    print(f"seed {seed}: precision={p:.3f} recall={r:.3f} f1={f:.3f}; smoothed over 3 frames f1={sf:.3f} "
          f"({len(truth)} frames)", flush=True)
    return {"seed": seed, "precision": p, "recall": r, "f1": f, "smoothed_f1": sf, "frames": len(truth),
            "fit_seconds": fit}


def spread(values: list[float]) -> str:
    """Mean, worst and a 95% t interval of the mean over seeds."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return f"{v.mean():.3f}"
    from scipy.stats import t

    half = float(t.ppf(0.975, len(v) - 1)) * v.std(ddof=1) / np.sqrt(len(v))
    return f"mean {v.mean():.3f} (worst {v.min():.3f}, 95% t interval {v.mean() - half:.3f}-{v.mean() + half:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--protocol", "--split", choices=["time", "kfold", "fullhd", "every"], default="time")
    parser.add_argument("--seeds", default="42", help="comma-separated seeds, e.g. 1,2,3,4,5")
    parser.add_argument("--experiment", default="fish_frames", help="the experiment config trained")
    parser.add_argument("--cut", type=int, default=120)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--gap", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="keep the scratch folders here")
    parser.add_argument("--json", type=Path, default=None, help="write the per-seed figures here")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    root = args.keep or Path(tempfile.mkdtemp(prefix="fish_frames_"))
    results = [run_seed(seed, root / f"seed{seed}", args) for seed in seeds]
    label = {"time": "time split", "kfold": f"{args.folds} time blocks", "fullhd": "full-HD frames",
             "every": "every 2nd frame (leaky)"}[args.protocol]
    if args.json:
        args.json.write_text(json.dumps({"protocol": args.protocol, "experiment": args.experiment,
                                         "overrides": args.overrides, "seeds": results}, indent=1))
    print(f"scratch folders: {root}")
    if len(results) > 1:
        for key in ("precision", "recall", "smoothed_f1"):
            print(f"{key} over {len(results)} seeds: {spread([r[key] for r in results])}")
        print(f"fish frames, {label}, {len(results)} seeds {','.join(map(str, seeds))}: f1 "
              f"{spread([r['f1'] for r in results])}; per seed " + " ".join(f"{r['f1']:.3f}" for r in results))
    else:
        r = results[0]
        print(f"fish frames, {label}: precision={r['precision']:.3f} recall={r['recall']:.3f} f1={r['f1']:.3f} "
              f"({r['frames']} frames)")


if __name__ == "__main__":
    main()
