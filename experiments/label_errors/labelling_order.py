"""What to label next: frames added in the order ``fishbear review ... unlabelled=DIR rank=uncertain``
gives against a random order, 10 at a time (issue 39).

Per seed, on the fish video trap:

1. the pool is the labelled frames 1-120 (their labels hidden until a frame is "labelled"); the
   held-out test is the frames 121-168 (the time split's test);
2. start from a seeded 10% of the pool (two frames of each class at least: one class in training
   and validation);
3. each step trains ``experiment=fish_frames`` (``--epochs``) on the frames labelled so far and
   scores fish-frame F1 on the test frames (each frame on its own);
4. the next 10 frames: ``fishbear review run=RUN unlabelled=REST rank=uncertain queue=10
   write_only=true`` (the least sure, no two alike), or 10 drawn at random; their labels are then
   read, as a person would give them.

    python experiments/label_errors/labelling_order.py --seeds 1,2,3 --steps 6 --out /tmp/order \
        --json experiments/label_errors/results_order.json
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
_spec = importlib.util.spec_from_file_location("fish_frames_run", REPO / "experiments" / "fish_frames" / "run.py")
fish = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fish)


def link(items: list[tuple[Path, str]], folder: Path, by_class: bool) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    for path, label in items:
        target = folder / label / path.name if by_class else folder / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path.absolute())


def train(items: list[tuple[Path, str]], case: Path, seed: int, epochs: int) -> Path:
    run = case / "run"
    if not (run / "checkpoints" / "best.ckpt").is_file():
        link(items, case / "data" / "train", by_class=True)
        subprocess.run([sys.executable, "-m", "fishbear", "train", "experiment=fish_frames", f"data.root={case / 'data'}",
                        "data.test_pct=0", f"trainer.max_epochs={epochs}", f"seed={seed}", f"data.split_seed={seed}",
                        "logger=none", f"hydra.run.dir={run}"], check=True, stdout=subprocess.DEVNULL)
    return run


def f1(run: Path, test: list[tuple[Path, str]]) -> float:
    from fishbear.engine.inference import Predictor

    answers = [a["label"] for _, a in Predictor.from_checkpoint(run / "checkpoints" / "best.ckpt").predict_files(
        [p for p, _ in test])]
    return fish.scores([a == "fish" for a in answers], [t == "fish" for _, t in test])[2]


def uncertain_next(run: Path, rest: list[tuple[Path, str]], folder: Path, count: int) -> list[str]:
    link(rest, folder, by_class=False)
    shutil.rmtree(run / "review_unlabelled", ignore_errors=True)
    subprocess.run([sys.executable, "-m", "fishbear", "review", f"run={run}", f"unlabelled={folder}", "rank=uncertain",
                    f"queue={count}", "write_only=true"], check=True, stdout=subprocess.DEVNULL)
    return [row["file"] for row in csv.DictReader((run / "review_unlabelled" / "ranking.csv").open())]


def plot(rows: list[dict], path: Path) -> None:
    """F1 against frames labelled, per order: each seed's line thin, the mean thick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for order, colour in (("uncertain", "tab:blue"), ("random", "tab:orange")):
        chosen = [r for r in rows if r["order"] == order]
        for seed in sorted({r["seed"] for r in chosen}):
            line = [r for r in chosen if r["seed"] == seed]
            axes.plot([r["labelled"] for r in line], [r["f1"] for r in line], color=colour, alpha=0.3, linewidth=1)
        counts = sorted({r["labelled"] for r in chosen})
        means = [np.mean([r["f1"] for r in chosen if r["labelled"] == c]) for c in counts]
        name = "rank=uncertain" if order == "uncertain" else "random"
        seeds = len({r["seed"] for r in chosen})
        axes.plot(counts, means, color=colour, linewidth=2.5, marker="o", label=f"{name} (mean of {seeds} seeds)")
    axes.set_xlabel("frames labelled (of the 120 s pool)")
    axes.set_ylabel("fish-frame F1, frames 121-168")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    axes.set_title("What to label next: the least sure, no two alike, against random")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--steps", type=int, default=6, help="trainings per order (the first on the starting 10%%)")
    parser.add_argument("--add", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--figure", type=Path, default=None, help="draw the figure from --json's rows and stop")
    args = parser.parse_args()
    if args.figure:
        plot(json.loads(args.json.read_text()), args.figure)
        return
    frames = fish.labelled_frames(args.shared / "fish" / "video1_output")
    pool = [frames[n] for n in sorted(frames) if n <= 120]
    test = [frames[n] for n in sorted(frames) if n > 120]
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rng = np.random.default_rng(seed)
        while True:
            start = set(rng.choice(len(pool), max(2, round(0.1 * len(pool))), replace=False).tolist())
            labels = [pool[i][1] for i in start]
            if min(labels.count(c) for c in ("fish", "no_fish")) >= 2:  # a class needs training and validation frames
                break
        for order in ("uncertain", "random"):
            labelled, draw = set(start), np.random.default_rng(seed + 1000)
            for step in range(args.steps):
                case = args.out / f"seed{seed}" / order / f"step{step}"
                run = train([pool[i] for i in sorted(labelled)], case, seed, args.epochs)
                rows.append({"seed": seed, "order": order, "labelled": len(labelled), "f1": f1(run, test),
                             "frames": sorted(pool[i][0].name for i in labelled)})
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "frames"}), flush=True)
                rest = [i for i in range(len(pool)) if i not in labelled]
                if step == args.steps - 1 or not rest:
                    break
                if order == "random":
                    labelled |= set(draw.choice(rest, min(args.add, len(rest)), replace=False).tolist())
                else:
                    names = {pool[i][0].name: i for i in rest}
                    labelled |= {names[n] for n in uncertain_next(run, [pool[i] for i in rest], case / "unlabelled",
                                                                  args.add)}
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1) + "\n")
    for order in ("uncertain", "random"):
        for count in sorted({r["labelled"] for r in rows}):
            chosen = [r["f1"] for r in rows if r["order"] == order and r["labelled"] == count]
            if chosen:
                print(f"{order} {count} frames: F1 {fish.spread(chosen)}")


if __name__ == "__main__":
    main()
