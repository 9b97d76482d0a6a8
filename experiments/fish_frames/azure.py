"""The cloud API's first pass against fishbear's, on the frames both saw.

``../shared/data/fish/exported_frames/video1/result.csv`` holds Azure Computer Vision's tags for
85 frames of the same video, named by frame index k of the original video. The labelled frames
are named by second N. Matching, checked on the pixels: N = k / 30 + 1 for k a multiple of 30
(a 30 fps video, VoTT's frames counted from 1), and the two JPEGs must agree (mean absolute
difference of a 150 x 84 thumbnail under 5 of 255: re-encoded copies differ by about 1.7, other
frames by far more); the burst k = 4175-4225 has no labelled counterpart but k = 4200. The API
says "fish" when its tags contain ``fish``. fishbear's calls come from ``run.py --protocol kfold``
(every frame sorted by a model that did not train on its time block), read from its
``calls.csv`` (one per seed: ``<scratch>/seed<S>/calls.csv``).

    python experiments/fish_frames/azure.py --calls SCRATCH/seed1/calls.csv [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import numpy as np
from PIL import Image
from run import FISH, scores  # experiments/fish_frames/run.py


def thumbnail(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((150, 84)), dtype=np.float32)


def matched_frames(shared: Path) -> dict[int, tuple[int, bool]]:
    """Second N -> (k, whether the API tagged fish), for the exported frames that match a labelled one."""
    labelled = {}
    for sub in FISH:
        for path in (shared / "fish" / "video1_output" / sub).glob("video1_frame_*.jpg"):
            labelled[int(re.search(r"_(\d+)\.jpg$", path.name).group(1))] = path
    exported = shared / "fish" / "exported_frames" / "video1"
    out = {}
    with (exported / "result.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            k = int(row["frame"])
            second = k // 30 + 1
            if k % 30 or second not in labelled:
                continue
            if np.abs(thumbnail(exported / f"frame_{k}.jpg") - thumbnail(labelled[second])).mean() >= 5:
                continue
            out[second] = (k, "fish" in row["tags"].split())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--calls", type=Path, required=True, help="calls.csv of run.py --protocol kfold")
    args = parser.parse_args()
    matched = matched_frames(args.shared)
    with args.calls.open(newline="") as handle:
        # run.py's calls.csv names each sorted frame by its file, video1_frame_<N>.jpg
        calls = {int(re.search(r"_(\d+)\.jpg$", row["file"]).group(1)): row for row in csv.DictReader(handle)}
    seconds = sorted(n for n in matched if n in calls)
    truth = [calls[n]["truth"] == "fish" for n in seconds]
    print(f"{len(matched)} of the API's frames match a labelled frame; {len(seconds)} of them were sorted by fishbear; "
          f"{sum(truth)} hold fish")
    for name, said in (("cloud API (tag 'fish')", [matched[n][1] for n in seconds]),
                       ("fishbear, per frame", [calls[n]["call"] == "fish" for n in seconds]),
                       ("fishbear, smoothed", [float(calls[n]["smoothed"]) >= 0.5 for n in seconds])):
        p, r, f = scores(said, truth)
        right = sum(s == t for s, t in zip(said, truth))
        print(f"{name}: precision={p:.3f} recall={r:.3f} f1={f:.3f}; {right}/{len(seconds)} frames right, "
              f"{sum(said)} called fish")


if __name__ == "__main__":
    main()
