"""Planted label errors: how many of them each review ranking finds (issue 39).

Per dataset, rate and seed:

1. the dataset's training pictures are laid out in a scratch folder as links (the shared data is
   never touched), with ``rate`` of them, a seeded choice recorded in ``planted.json``, filed under
   another class. Both datasets here have two classes, so a flip "toward the most similar class"
   is the same as a uniform one;
2. a 5-fold sweep, ``fishbear train -m ... data.split=kfold data.fold=0,1,2,3,4`` (each picture
   predicted by the one model that did not train on it);
3. ``fishbear review sweep=... rank=confident write_only=true`` and ``rank=loss``, each writing its
   ``ranking.csv``;
4. per ranking: precision at k (k = the number planted), and precision and recall at the number of
   wrong labels confident learning estimates (the page's header figure), and of the flagged cards.
   ``rank=loss`` is the page's order (wrong calls first, grouped by confusion pair, then by loss);
   ``plain_loss`` orders the same out-of-fold losses alone.

    python experiments/label_errors/run.py --dataset bears --rates 0.05,0.1 --seeds 1,2,3 --out /tmp/labels \
        --json experiments/label_errors/results_bears.json

Rate 0 (the data as it is) writes each ranking's first 20 cards as a contact sheet
(``--sheets DIR``) for a person to count the real errors.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# the bears recipe (README) and the fish frames recipe with fewer epochs (a 5-fold sweep per seed
# and rate on 2 CPU cores); both rankings read the same out-of-fold probabilities
RECIPES = {
    "bears": ["data=bears", "model=mobilenet_v2", "model.pretrained=true", "trainer.max_epochs=4"],
    "bears_kinds": ["data=bears", "model=mobilenet_v2", "model.pretrained=true", "trainer.max_epochs=4"],
    "fish": ["experiment=fish_frames", "trainer.max_epochs=6"],
}
SOURCES = {"bears": ("bears", "train"), "bears_kinds": ("bears", "train"), "fish": ("fish", "video1_output")}
# bears_kinds: the same photos by what they show (the file names say it), five classes; a confusable
# flip files a photo under its nearest kind
KIND_OF = {"black": "black", "grizzly": "grizzly", "teddys": "teddy", "dog": "dog", "cat": "cat"}
CONFUSABLE = {"black": "grizzly", "grizzly": "black", "teddy": "black", "dog": "cat", "cat": "dog"}


def pictures(shared: Path, dataset: str) -> list[tuple[Path, str]]:
    """Every training picture and its class, in a fixed order."""
    if dataset == "fish":
        import importlib.util

        spec = importlib.util.spec_from_file_location("fish_frames_run", REPO / "experiments" / "fish_frames" / "run.py")
        fish = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fish)
        frames = fish.labelled_frames(shared / "fish" / "video1_output")
        return [frames[n] for n in sorted(frames)]
    root = shared.joinpath(*SOURCES[dataset])
    files = sorted(p for p in root.glob("*/*") if p.is_file())
    if dataset == "bears_kinds":
        return [(p, KIND_OF[re.split(r"[._]", p.name)[0]]) for p in files]
    return [(p, p.parent.name) for p in files]


def plant(items: list[tuple[Path, str]], rate: float, seed: int, root: Path, confusable: bool = False) -> list[str]:
    """Link every picture under ``root/train/<class>/``, ``rate`` of them (a seeded choice) under
    another class: drawn uniformly from the others, or its nearest (``CONFUSABLE``); returns the
    flipped files, relative to ``root``."""
    classes = sorted({label for _, label in items})
    rng = np.random.default_rng(seed)
    flips = set(rng.choice(len(items), int(round(rate * len(items))), replace=False).tolist()) if rate else set()
    planted = []
    for i, (path, label) in enumerate(items):
        others = [c for c in classes if c != label]
        filed = label
        if i in flips:
            filed = CONFUSABLE[label] if confusable else others[int(rng.integers(len(others)))]
        target = root / "train" / filed / path.name  # the name kept: the frames' time order is read from it
        if target.is_symlink() and target.resolve() != path.resolve():
            target = target.with_name(f"{i:05d}_{path.name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_symlink():
            target.symlink_to(path.absolute())
        if i in flips:
            planted.append(target.relative_to(root).as_posix())
    return planted


def sweep(dataset: str, root: Path, out: Path, seed: int, folds: int) -> float | None:
    """The k-fold sweep (kept if done); the seconds it took, as its ``done`` marker recorded them."""
    done = out / "done"
    if not done.is_file():
        command = [sys.executable, "-m", "fishbear", "train", "-m", *RECIPES[dataset], f"data.root={root}",
                   "data.split=kfold", f"data.folds={folds}", f"data.fold={','.join(map(str, range(folds)))}",
                   f"seed={seed}", f"data.split_seed={seed}", "logger=none", f"hydra.sweep.dir={out}"]
        print("$", " ".join(command[2:]), flush=True)
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        done.write_text(f"{time.perf_counter() - started:.1f}")
    text = done.read_text().strip()
    return float(text) if text else None


def ranking(sweep_dir: Path, rank: str) -> tuple[list[dict], dict]:
    subprocess.run([sys.executable, "-m", "fishbear", "review", f"sweep={sweep_dir}", f"rank={rank}", "write_only=true"],
                   check=True, stdout=subprocess.DEVNULL)
    rows = list(csv.DictReader((sweep_dir / "review" / "ranking.csv").open()))
    saved = json.loads((sweep_dir / "review" / "review.json").read_text())
    (sweep_dir / "review" / f"ranking_{rank}.csv").write_bytes((sweep_dir / "review" / "ranking.csv").read_bytes())
    return rows, saved


def found(rows: list[dict], planted: set[str], k: int) -> tuple[float, float]:
    """Precision and recall of the first ``k`` cards."""
    hits = len({r["file"] for r in rows[:k]} & planted)
    return hits / max(k, 1), hits / max(len(planted), 1)


def sheet(rows: list[dict], root: Path, path: Path, count: int = 20) -> None:
    """The first ``count`` cards as a contact sheet, each with its rank, given and likely label."""
    from PIL import Image, ImageDraw

    tiles = []
    for row in rows[:count]:
        image = Image.open(root / row["file"]).convert("RGB")
        image.thumbnail((220, 220))
        tile = Image.new("RGB", (224, 250), "white")
        tile.paste(image, ((224 - image.width) // 2, 2))
        ImageDraw.Draw(tile).text((4, 226), f"{row['rank']} {row['given']}->{row['likely']} {float(row['score']):.2f}",
                                  fill="black")
        tiles.append(tile)
    board = Image.new("RGB", (224 * 5, 250 * ((len(tiles) + 4) // 5)), "white")
    for i, tile in enumerate(tiles):
        board.paste(tile, (224 * (i % 5), 250 * (i // 5)))
    path.parent.mkdir(parents=True, exist_ok=True)
    board.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(RECIPES), default="bears")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--rates", default="0.05,0.1")
    parser.add_argument("--flips", choices=["uniform", "confusable"], default="uniform")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--sheets", type=Path, default=None, help="rate 0: contact sheets of each ranking's first cards")
    args = parser.parse_args()
    items = pictures(args.shared, args.dataset)
    results = []
    for rate in (float(r) for r in args.rates.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            case = args.out / f"{args.dataset}_{rate:g}_{seed}" if args.flips == "uniform" else \
                args.out / f"{args.dataset}_{args.flips}_{rate:g}_{seed}"
            planted = set(plant(items, rate, seed, case / "data", args.flips == "confusable"))
            (case / "planted.json").write_text(json.dumps(sorted(planted), indent=1))
            seconds = sweep(args.dataset, case / "data", case / "sweep", seed, args.folds)
            row = {"dataset": args.dataset, "flips": args.flips, "rate": rate, "seed": seed, "pictures": len(items),
                   "planted": len(planted),
                   "sweep_seconds": round(seconds, 1) if seconds else None}
            for rank in ("confident", "loss"):
                rows, saved = ranking(case / "sweep", rank)
                if rank == "confident":
                    estimate = int(round(sum(saved["estimated_wrong"].values())))
                    row["estimated"] = estimate
                    row["flagged"] = sum(r["flagged"] == "1" for r in rows)
                    flagged = [r for r in rows if r["flagged"] == "1"]
                    row["flagged_precision"], row["flagged_recall"] = found(flagged, planted, len(flagged))
                orders = {rank: rows}
                if rank == "loss":  # and the loss alone, without the page's grouping by confusion pair
                    orders["plain_loss"] = sorted(rows, key=lambda r: (-float(r["score"]), r["file"]))
                for name, order in orders.items():
                    if planted:
                        row[f"{name}_precision_at_k"] = found(order, planted, len(planted))[0]
                        row[f"{name}_precision_at_estimate"], row[f"{name}_recall_at_estimate"] = found(
                            order, planted, row["estimated"])
                if not rate and args.sheets:
                    sheet(rows, case / "data", args.sheets / f"top20_{rank}_{args.dataset}_seed{seed}.png")
                    (args.sheets / f"top20_{rank}_{args.dataset}_seed{seed}.csv").write_text(
                        "".join(f"{r['rank']},{r['file']},{r['given']},{r['likely']},{r['score']}\n" for r in rows[:20]))
            results.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
