"""Sorting video frames into fish / no_fish with a trained detector, end to end through the CLI.

The test split of a fish_boxes run (frames the detector never trained or chose its checkpoint
on) is encoded, in frame order, into an mp4 at one frame per second; ``python -m fishbear.frames
video=clip.mp4 sort_with=best.ckpt score=S`` files each frame into ``fish/`` or ``no_fish/``; the
script prints how that agrees with the labels (a frame has fish when it has at least one box).

    python experiments/fish_boxes/sort_frames.py outputs/fish_boxes/mobilenet_v2_imagenet [--score 0.3 0.5]
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from fishbear.data.video import write_video
from fishbear.engine.experiment import build_datamodule


def test_frames(run: Path) -> list[tuple[int, Path, bool]]:
    """The run's test split, rebuilt from its own config (the split is seeded): frame number,
    file, whether it has boxes."""
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    datamodule = build_datamodule(cfg)
    datamodule.setup()
    frames = [(int(re.search(r"_(\d+)\.\w+$", s.image.name).group(1)), s.image, len(s.target) > 0)
              for s in datamodule.samples(datamodule.test_split)]
    return sorted(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a fish_boxes run folder (with checkpoints/best.ckpt)")
    parser.add_argument("--score", type=float, nargs="+", default=[0.3, 0.5])
    args = parser.parse_args()
    frames = test_frames(args.run)
    truth = np.array([has for _, _, has in frames])
    with tempfile.TemporaryDirectory() as scratch:
        video = write_video(Path(scratch) / "test_frames.mp4",
                            (np.asarray(Image.open(path).convert("RGB")) for _, path, _ in frames), fps=1)
        for score in args.score:
            out = Path(scratch) / f"sorted_{score}"
            subprocess.run([sys.executable, "-m", "fishbear.frames", f"video={video}", f"out={out}",
                            f"sort_with={args.run / 'checkpoints' / 'best.ckpt'}", f"score={score}"], check=True)
            with open(out / "frames.csv", newline="") as handle:
                rows = list(csv.DictReader(handle))
            found = np.array([row["class"] != "no_fish" for row in rows])
            if len(found) != len(truth):
                raise SystemExit(f"{len(rows)} frames came back from {len(truth)} written")
            review = sum(row["review"] == "yes" for row in rows)
            print(f"score {score}: {int((found == truth).sum())}/{len(truth)} frames sorted right "
                  f"(accuracy {(found == truth).mean():.3f}); fish frames: {int((found & truth).sum())} of "
                  f"{int(truth.sum())} found; empty frames: {int((found & ~truth).sum())} of {int((~truth).sum())} "
                  f"called fish; {review} marked for review; all-no_fish baseline {(~truth).mean():.3f}")


if __name__ == "__main__":
    main()
