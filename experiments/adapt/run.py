"""The fish model adapted to the later full-HD footage without its labels, measured (issue 38).

Per seed: ``fishbear train experiment=fish_frames`` on the labelled frames 1-120 of the video trap
(``../shared/data/fish/video1_output``), as ``experiments/fish_frames/run.py --protocol time`` does.
The 33 full-HD frames of ``../shared/data/fish/testFrames`` (hours later, yellow-green water, the
camera moved) are written as an mp4, as a user has them; each variant runs

    fishbear adapt ckpt=RUN/checkpoints/best.ckpt video=later.mp4 method=...

on that video (no labels), then sorts it with ``fishbear frames sort_with=ADAPTED``, scored against
the labels given by eye (``experiments/fish_frames/fullhd_labels.csv``). The same adapted model also
sorts the frames 121-168 of the first video (the time split's held-out frames: old footage, never
trained on), to show what adapting costs there.

    python experiments/adapt/run.py --seeds 1,2,3,4,5 [--variants none,colour,bn,...] [--keep DIR]

Each variant's line gives F1, precision and recall over seeds (mean, worst, 95% t interval), and
the seconds ``fishbear adapt`` took; per-seed figures go to ``--json``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
_spec = importlib.util.spec_from_file_location("fish_frames_run", REPO / "experiments" / "fish_frames" / "run.py")
fish = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fish)

from fishbear.data.video import write_video  # noqa: E402

VARIANTS = {"none": None, "colour": "colour", "bn": "bn", "tent": "tent", "colour+bn": "[colour,bn]",
            "colour+bn+tent": "[colour,bn,tent]", "pseudo": "pseudo", "colour+pseudo": "[colour,pseudo]",
            "colour+pseudo+review": "[colour,pseudo]"}
REVIEWED = "+review"  # the variant then has a person sort the doubtful pictures and adapts again


def train_source(seed: int, frames: dict, cut: int, scratch: Path, overrides: list[str]) -> Path:
    """The time split's model of ``seed`` (frames 1-``cut``), trained as run.py trains it; kept if there."""
    ckpt = scratch / "run" / "checkpoints" / "best.ckpt"
    if ckpt.is_file():
        return ckpt
    fish.write_layout([frames[n] for n in sorted(frames) if n <= cut], [], scratch / "data")
    command = [sys.executable, "-m", "fishbear", "train", "experiment=fish_frames", f"data.root={scratch / 'data'}",
               f"seed={seed}", f"data.split_seed={seed}", f"hydra.run.dir={scratch / 'run'}", "logger=none", *overrides]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return ckpt


def as_video(items: list[tuple[Path, str]], path: Path) -> Path:
    if not path.is_file():
        write_video(path, (np.asarray(Image.open(p).convert("RGB")) for p, _ in items), fps=1)
    return path


def sort(ckpt: Path, video: Path, out: Path, truth: list[bool], skip: frozenset[int] = frozenset()) \
        -> tuple[float, float, float]:
    """``fishbear frames sort_with=ckpt`` on ``video``; precision, recall, F1 of the fish calls on the
    frames not in ``skip``."""
    subprocess.run([sys.executable, "-m", "fishbear", "frames", f"video={video}", f"out={out}", f"sort_with={ckpt}",
                    "overwrite=true"], check=True, stdout=subprocess.DEVNULL)
    rows = list(csv.DictReader((out / "frames.csv").open()))
    kept = [i for i in range(len(rows)) if i not in skip]
    return fish.scores([rows[i]["class"] == "fish" for i in kept], [truth[i] for i in kept])


def adapt(ckpt: Path, video: Path, method: str, out: Path, extra: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fishbear", "adapt", f"ckpt={ckpt}", f"video={video}", f"method={method}",
                    f"out={out}", "overwrite=true", *extra], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def review(queue: Path, sorted_by_person: Path, labels: list[str]) -> list[int]:
    """The person's part, played by the labels given by eye: each picture ``adapt`` put in ``queue``
    (``doubtful/<predicted>/frame_<n>.png``) copied into the folder of its true class. Returns how
    frames the person looked at."""
    import shutil

    shutil.rmtree(sorted_by_person, ignore_errors=True)
    pictures = sorted(queue.rglob("frame_*.png"))
    for picture in pictures:
        label = labels[int(picture.stem.split("_")[1])]
        (sorted_by_person / label).mkdir(parents=True, exist_ok=True)
        shutil.copy2(picture, sorted_by_person / label / picture.name)
    return sorted(int(picture.stem.split("_")[1]) for picture in pictures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--cut", type=int, default=120)
    parser.add_argument("--keep", type=Path, default=None, help="keep (and reuse) the trained runs here")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--adapt", nargs="*", default=[], help="extra fishbear adapt overrides (e.g. tent_epochs=10)")
    parser.add_argument("overrides", nargs="*", help="fishbear train overrides of the source model")
    args = parser.parse_args()
    frames = fish.labelled_frames(args.shared / "fish" / "video1_output")
    later = fish.fullhd_frames(args.shared)
    old = [frames[n] for n in sorted(frames) if n > args.cut]
    root = args.keep or Path(tempfile.mkdtemp(prefix="adapt_"))
    results: dict[str, list[dict]] = {v: [] for v in args.variants.split(",")}
    for seed in (int(s) for s in args.seeds.split(",")):
        scratch = root / f"seed{seed}"
        ckpt = train_source(seed, frames, args.cut, scratch, args.overrides)
        later_video, old_video = as_video(later, root / "later.mp4"), as_video(old, root / "old.mp4")
        for variant in results:
            model, seconds, looked_at = ckpt, 0.0, []
            if VARIANTS[variant]:
                seconds = adapt(ckpt, later_video, VARIANTS[variant], scratch / f"adapted_{variant}", args.adapt)
                model = scratch / f"adapted_{variant}" / "checkpoints" / "best.ckpt"
            if variant.endswith(REVIEWED):
                person = scratch / f"reviewed_{variant}"
                looked_at = review(scratch / f"adapted_{variant}" / "doubtful", person, [lab for _, lab in later])
                seconds += adapt(ckpt, later_video, VARIANTS[variant], scratch / f"readapted_{variant}",
                                 [*args.adapt, f"labelled={person}"])
                model = scratch / f"readapted_{variant}" / "checkpoints" / "best.ckpt"
            p, r, f = sort(model, later_video, scratch / f"later_{variant}", [lab == "fish" for _, lab in later])
            unseen = sort(model, later_video, scratch / f"later_{variant}", [lab == "fish" for _, lab in later],
                          frozenset(looked_at)) if looked_at else (p, r, f)
            op, orc, of = sort(model, old_video, scratch / f"old_{variant}", [lab == "fish" for _, lab in old])
            row = {"seed": seed, "precision": p, "recall": r, "f1": f, "old_precision": op, "old_recall": orc,
                   "old_f1": of, "adapt_seconds": seconds, "looked_at": looked_at,
                   "unseen_precision": unseen[0], "unseen_recall": unseen[1], "unseen_f1": unseen[2]}
            results[variant].append(row)
            print(f"seed {seed} {variant}: full-HD f1={f:.3f} precision={p:.3f} recall={r:.3f}; old footage f1={of:.3f}; "
                  f"adapt {seconds:.1f} s; looked at {len(looked_at)} frames, f1 on the others {unseen[2]:.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"cut": args.cut, "overrides": args.overrides, "adapt": args.adapt,
                                         "results": results}, indent=1))
    print(f"runs kept in {root}")
    for variant, rows in results.items():
        print(f"{variant}: full-HD f1 {fish.spread([r['f1'] for r in rows])}; precision "
              f"{fish.spread([r['precision'] for r in rows])}; recall {fish.spread([r['recall'] for r in rows])}; "
              f"old footage f1 {fish.spread([r['old_f1'] for r in rows])}; adapt "
              f"{np.mean([r['adapt_seconds'] for r in rows]):.1f} s; frames looked at "
              f"{np.mean([len(r['looked_at']) for r in rows]):.1f}; f1 on the others "
              f"{fish.spread([r['unseen_f1'] for r in rows])}; "
              f"unseen precision {fish.spread([r['unseen_precision'] for r in rows])}; per seed f1 "
              + " ".join(f"{r['f1']:.3f}" for r in rows))


if __name__ == "__main__":
    main()
