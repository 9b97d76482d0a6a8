"""Read Planet's real train_v2.csv (40,479 rows, ../shared/data/planet/data/) with fishbear's
reader. No Planet tile exists in this project's shared data, so tiny placeholder tiles named
after the rows are written first (the reader checks that every row has its image).

    python experiments/planet/labels.py [CSV] [--tiles /tmp/planet-tiles]

Prints the row count, the tag vocabulary with counts, and the rows without a weather tag.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]
WEATHER = {"clear", "partly_cloudy", "haze", "cloudy"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("csv", type=Path, nargs="?", default=REPO.parent / "shared" / "data" / "planet" / "data" / "train_v2.csv")
    parser.add_argument("--tiles", type=Path, default=Path("/tmp/planet-tiles"))
    args = parser.parse_args()
    from fishbear.formats.tags_csv import TagCsvReader

    folder = args.tiles / "train-jpg"
    folder.mkdir(parents=True, exist_ok=True)
    names = [line.split(",", 1)[0] for line in args.csv.read_text().splitlines()[1:] if line.strip()]
    tile = Image.new("RGB", (4, 4), (60, 110, 60))
    for name in names:
        if not (folder / f"{name}.jpg").exists():
            tile.save(folder / f"{name}.jpg")
    (args.tiles / "train_v2.csv").write_bytes(args.csv.read_bytes())
    started = time.perf_counter()
    catalog = TagCsvReader()(args.tiles)
    seconds = time.perf_counter() - started
    samples = catalog.splits["train"]
    counts = Counter(catalog.classes[i] for s in samples for i in s.target)
    no_weather = [s.image.stem for s in samples if not WEATHER & {catalog.classes[i] for i in s.target}]
    print(f"{len(samples)} rows, {len(catalog.classes)} tags, read in {seconds:.2f} s")
    for tag, n in counts.most_common():
        print(f"  {tag:20s} {n}")
    print(f"rows without a weather tag: {no_weather}")


if __name__ == "__main__":
    main()
