"""The first four fish frames of the video (seconds 1-42) above four of its last block (127-168):
why a model trained on the later blocks misses the early fish (k-fold block 0).

    python experiments/fish_frames/early_late_sheet.py [--shared ../shared/data] [--out early_vs_late.png]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=HERE.parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=HERE / "early_vs_late.png")
    args = parser.parse_args()
    root = args.shared / "fish" / "video1_output"
    fish = {int(re.search(r"_(\d+)\.jpg$", p.name).group(1)): p
            for sub in ("positive", "testImages") for p in (root / sub).glob("video1_frame_*.jpg")}
    early = [n for n in sorted(fish) if n <= 42][:4]
    late = [n for n in sorted(fish) if n > 126][:4]
    sheet = Image.new("RGB", (1200, 336))
    for i, n in enumerate(early + late):
        sheet.paste(Image.open(fish[n]).convert("RGB").resize((300, 168)), ((i % 4) * 300, (i // 4) * 168))
    sheet.save(args.out)
    print(f"{args.out}: frames {early} (top) and {late} (bottom)")


if __name__ == "__main__":
    main()
