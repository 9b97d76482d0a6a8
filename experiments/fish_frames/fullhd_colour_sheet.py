"""A full-HD frame of the later footage beside a labelled frame of the same camera, a fish frame
above an empty one: why the recipe trained on the labelled seconds calls a school of fish empty
there (the water's colour moved from blue-green to yellow-green; the camera moved a little).

    python experiments/fish_frames/fullhd_colour_sheet.py [--shared ../shared/data] [--out fullhd_colour_shift.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
TILE = (450, 253)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=HERE.parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=HERE / "fullhd_colour_shift.png")
    args = parser.parse_args()
    fish = args.shared / "fish"
    tiles = [fish / "testFrames" / "frame_8250.jpg", sorted((fish / "video1_output" / "positive").glob("*.jpg"))[-1],
             fish / "testFrames" / "frame_4000.jpg", sorted((fish / "video1_output" / "negative").glob("*.jpg"))[-1]]
    sheet = Image.new("RGB", (2 * TILE[0], 2 * TILE[1]))
    for i, path in enumerate(tiles):
        with Image.open(path) as image:
            sheet.paste(image.convert("RGB").resize(TILE), ((i % 2) * TILE[0], (i // 2) * TILE[1]))
    sheet.save(args.out)
    print(f"{args.out}: left full-HD (fish, empty), right labelled (fish, empty): {', '.join(p.name for p in tiles)}")


if __name__ == "__main__":
    main()
