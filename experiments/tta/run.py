"""Test-time augmentation by mirroring (``tta=true``): its gain or loss per task, measured on
held-out pictures the models never trained on (issue 40).

- **bears**: the README's bears recipe (MobileNetV2 ImageNet, ``fine_tune``, 4 epochs) trained per
  seed on ``../shared/data/bears/train``, scored on the 115 photos of ``bears/test``: accuracy;
- **bears, murky**: the same models on the same photos through murky water (``experiments/adapt/bears.py``'s
  colour cast, unadapted): a harder held-out set, with room to gain;
- **fish, time split**: ``experiment=fish_frames`` trained per seed on the frames 1-120 of the video
  trap, scored on the frames 121-168: fish-frame F1 (each frame on its own, no smoothing).

The trained runs are those of ``experiments/adapt`` (``--bears-runs``, ``--fish-runs``; trained
there when missing). Per seed: the figure with and without ``tta``, and the seconds per picture of
each (2 CPU cores, batches of 16).

    python experiments/tta/run.py --seeds 1,2,3 --bears-runs /tmp/adaptbears --fish-runs /tmp/adaptexp \
        --json experiments/tta/results.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments" / "adapt"))

from run import fish, train_source  # noqa: E402  (experiments/adapt/run.py: the fish source models)


def bears_run(seed: int, runs: Path, shared: Path) -> Path:
    from bears import RECIPE  # experiments/adapt/bears.py

    run = runs / f"seed{seed}" / "run"
    if not (run / "checkpoints" / "best.ckpt").is_file():
        subprocess.run([sys.executable, "-m", "fishbear", "train", *RECIPE, f"data.root={shared / 'bears'}",
                        f"seed={seed}", f"hydra.run.dir={run}"], check=True, stdout=subprocess.DEVNULL)
    return run / "checkpoints" / "best.ckpt"


def answers(ckpt: Path, files: list[Path], tta: bool) -> tuple[list[str], float]:
    """Each file's class, and the seconds per picture (decoding included)."""
    from fishbear.engine.inference import Predictor

    predictor = Predictor.from_checkpoint(ckpt, tta=tta)
    started = time.perf_counter()
    labels = [answer["label"] for _, answer in predictor.predict_files(files, batch_size=16)]
    return labels, (time.perf_counter() - started) / len(files)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--bears-runs", type=Path, required=True)
    parser.add_argument("--fish-runs", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    from bears import cast_folder  # experiments/adapt/bears.py

    bears_test = [(p, p.parent.name) for p in sorted((args.shared / "bears" / "test").rglob("*")) if p.is_file()]
    murky = cast_folder(args.shared / "bears" / "test", args.bears_runs / "murky")
    frames = fish.labelled_frames(args.shared / "fish" / "video1_output")
    later = [frames[n] for n in sorted(frames) if n > 120]
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        ckpts = {"bears": bears_run(seed, args.bears_runs, args.shared),
                 "fish": train_source(seed, frames, 120, args.fish_runs / f"seed{seed}", [])}
        ckpts["bears_murky"] = ckpts["bears"]
        for task, items in (("bears", bears_test), ("bears_murky", murky), ("fish", later)):
            for tta in (False, True):
                labels, seconds = answers(ckpts[task], [p for p, _ in items], tta)
                if task != "fish":
                    figure = float(np.mean([a == t for a, (_, t) in zip(labels, items)]))
                else:
                    figure = fish.scores([a == "fish" for a in labels], [t == "fish" for _, t in items])[2]
                rows.append({"task": task, "seed": seed, "tta": tta, "figure": figure, "seconds_per_picture": seconds,
                             "pictures": len(items)})
                print(json.dumps(rows[-1]), flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1) + "\n")
    for task in ("bears", "bears_murky", "fish"):
        for tta in (False, True):
            chosen = [r for r in rows if r["task"] == task and r["tta"] == tta]
            print(f"{task} tta={tta}: {'F1' if task == 'fish' else 'accuracy'} {fish.spread([r['figure'] for r in chosen])}; "
                  f"{1000 * np.mean([r['seconds_per_picture'] for r in chosen]):.1f} ms per picture")
        gain = [t["figure"] - f["figure"] for f, t in zip(
            [r for r in rows if r["task"] == task and not r["tta"]], [r for r in rows if r["task"] == task and r["tta"]])]
        print(f"{task} gain per seed: {' '.join(f'{g:+.3f}' for g in gain)}")


if __name__ == "__main__":
    main()
