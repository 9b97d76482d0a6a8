"""Fish / no-fish on the video-trap frames, and the automated first pass over later footage.

The 168 frames of ``../shared/data/fish/video1_output`` are numbered by second of the video
(``video1_frame_<N>.jpg``; ``positive/`` and ``testImages/`` hold fish, ``negative/`` none).
Protocol, the way the exercise is worked (a person labels a sample of the footage, the model
sorts the rest), so that the test is footage the model never saw:
  1. frames with N % ``--label-every`` == 0 are the labelled sample (ImageFolder
     ``train/{fish,no_fish}`` of symlinks in a scratch folder; a seeded 20% becomes validation);
     with ``--split time``, frames N <= ``--cut`` are, instead (the early footage only);
  2. the other frames are the test set (``test/{fish,no_fish}``), and are also encoded, in order,
     into an mp4 at 1 frame per second;
  3. ``python -m fishbear.train data=frames ...`` fine-tunes a pretrained network (8 epochs, the
     whole frame at 192 x 336: ``data=frames``' default);
  4. ``python -m fishbear.frames video=later.mp4 sort_with=best.ckpt`` files the test footage into
     ``fish/`` and ``no_fish/``; its agreement with the true labels and the number of frames
     marked for review are printed.

    python experiments/fish_frames/run.py [--shared ../shared/data] [--protocol time|every|kfold]
        [--cut 120] [--label-every 2] [--folds 4 --gap 2] [--keep DIR] [fishbear overrides]

``--protocol time`` (train on N <= ``--cut``, sort N > ``--cut``) is the honest one and ends with
``fish frames, time split: precision=P recall=R f1=F (N frames)``; ``kfold`` repeats it over
``--folds`` contiguous blocks of the video (each block sorted by a model trained on the others,
``--gap`` frames dropped on each side); ``every`` (label every 2nd frame) leaks neighbours and is
kept for contrast. The per-frame calls are ``frames.csv``'s ``class``; ``smoothed`` scores
(``events.smooth`` frames) are scored beside them.
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


def labelled_frames(folder: Path) -> dict[int, tuple[Path, str]]:
    frames = {}
    for sub, label in FISH.items():
        for path in (folder / sub).glob("video1_frame_*.jpg"):
            frames[int(re.search(r"_(\d+)\.jpg$", path.name).group(1))] = (path, label)
    return frames


def write_layout(frames: dict[int, tuple[Path, str]], labelled: set[int], root: Path, keep: set[int]) -> None:
    """``train/`` of the labelled frames, ``test/`` of the ``keep`` ones (frames in neither are left out)."""
    for number, (path, label) in frames.items():
        if number not in labelled and number not in keep:
            continue
        split = "train" if number in labelled else "test"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--protocol", "--split", choices=["every", "time", "kfold"], default="time")
    parser.add_argument("--label-every", type=int, default=2)
    parser.add_argument("--cut", type=int, default=120)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--gap", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="keep the scratch folder here")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    frames = labelled_frames(args.shared / "fish" / "video1_output")
    if len(frames) != 168:
        raise SystemExit(f"expected 168 labelled frames under {args.shared}/fish/video1_output, found {len(frames)}")
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="fish_frames_"))
    numbers = sorted(frames)
    if args.protocol == "kfold":
        bounds = np.linspace(0, len(numbers), args.folds + 1).round().astype(int)
        plans = []
        for k in range(args.folds):
            held = numbers[bounds[k]:bounds[k + 1]]
            near = set(numbers[max(0, bounds[k] - args.gap):bounds[k]] + numbers[bounds[k + 1]:bounds[k + 1] + args.gap])
            plans.append((f"fold {k}", {n for n in numbers if n not in held and n not in near}, held))
    elif args.protocol == "time":
        plans = [("time split", {n for n in frames if n <= args.cut}, [n for n in numbers if n > args.cut])]
    else:
        plans = [("every 2nd frame labelled (leaky)", {n for n in frames if n % args.label_every == 0},
                  [n for n in numbers if n % args.label_every])]
    calls: list[bool] = []
    smoothed_calls: list[bool] = []
    truth: list[bool] = []
    table = [["second", "truth", "call", "score", "smoothed"]]
    for name, labelled, later in plans:
        rows, fold_truth = sort_unseen(frames, labelled, later, scratch / name.split(" (")[0].replace(" ", "_"), args)
        target = next(key.removeprefix("smoothed_") for key in rows[0] if key.startswith("smoothed_"))
        table += [[n, frames[n][1], row["class"], row[f"score_{target}"], row[f"smoothed_{target}"]]
                  for n, row in zip(later, rows)]
        calls += [row["class"] == target for row in rows]
        smoothed_calls += [float(row[f"smoothed_{target}"]) >= 0.5 for row in rows]
        truth += fold_truth
        p, r, f = scores([row["class"] == target for row in rows], fold_truth)
        print(f"{name}: frames {later[0]}-{later[-1]}: precision={p:.3f} recall={r:.3f} f1={f:.3f}", flush=True)
    p, r, f = scores(smoothed_calls, truth)
    print(f"smoothed scores: precision={p:.3f} recall={r:.3f} f1={f:.3f}")
    p, r, f = scores(calls, truth)
    label = {"time": "time split", "kfold": f"{args.folds} time blocks", "every": "every 2nd frame (leaky)"}[args.protocol]
    print(f"fish frames, {label}: precision={p:.3f} recall={r:.3f} f1={f:.3f} ({len(truth)} frames)")
    with (scratch / "calls.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(table)  # each unseen frame's call, for experiments/fish_frames/azure.py
    print(f"scratch folder: {scratch} (calls.csv: every sorted frame's call)")


def sort_unseen(frames: dict[int, tuple[Path, str]], labelled: set[int], later: list[int], scratch: Path,
                args: argparse.Namespace) -> tuple[list[dict], list[bool]]:
    """Train on the ``labelled`` frames, sort the ``later`` ones from an mp4; frames.csv rows and the truth."""
    write_layout(frames, labelled, scratch / "data", keep=set(later))
    images = (np.asarray(Image.open(frames[n][0]).convert("RGB")) for n in later)
    video = write_video(scratch / "later.mp4", images, fps=1)

    run_dir = scratch / "run"
    train = [sys.executable, "-m", "fishbear.train", "data=frames", f"data.root={scratch / 'data'}",
             "data.split=stratified",  # the scratch tree holds train/ and test/; validation from train at random
             "model=mobilenet_v2", "model.pretrained=true", "callbacks=finetune", "trainer.max_epochs=8",
             "trainer.lr=2e-3", "trainer.lr_div=100", f"hydra.run.dir={run_dir}", *args.overrides]
    print("$", " ".join(train[1:]), flush=True)
    subprocess.run(train, check=True, stdout=subprocess.DEVNULL)
    report = json.loads((run_dir / "report.json").read_text())
    print(f"test ({len(later)} frames never labelled, {later[0]}-{later[-1]}): "
          + ", ".join(f"{k}={v:.4f}" for k, v in report["metrics"].items())
          + f"; fit {report['fit_seconds']:.1f} s for {report['epochs']} epochs on {report['device']['accelerator']}")

    sort = [sys.executable, "-m", "fishbear.frames", f"video={video}", f"out={scratch / 'sorted'}",
            f"sort_with={run_dir / 'checkpoints' / 'best.ckpt'}"]
    print("$", " ".join(sort[1:]), flush=True)
    subprocess.run(sort, check=True, stdout=subprocess.DEVNULL)
    rows = list(csv.DictReader((scratch / "sorted" / "frames.csv").open()))
    truth = [frames[n][1] for n in later]
    agree = sum(row["class"] == label for row, label in zip(rows, truth))
    review = [row for row in rows if row["review"]]
    wrong_unflagged = sum(row["class"] != label and not row["review"] for row, label in zip(rows, truth))
    print(f"first pass over the unlabelled footage: {agree}/{len(rows)} frames filed correctly "
          f"({agree / len(rows):.1%}; all-no_fish baseline {truth.count('no_fish') / len(truth):.1%}); "
          f"{len(review)} marked for review; {wrong_unflagged} wrong and not marked", flush=True)
    return rows, [label == "fish" for label in truth]


if __name__ == "__main__":
    main()
