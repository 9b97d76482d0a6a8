"""BIWI head-centre regression on a synthetic BIWI tree (no BIWI frame exists in this project's
shared data): per person a real-format ``rgb.cal`` and frames with ``_pose.txt`` files; each
640x480 frame shows a head-like ellipse at the head centre projected as fastai's lesson does,
its size following the depth. Person 03 is validation, 04 is test; the rest train.

    python experiments/biwi/run.py [--frames 60] [--epochs 10] [--out /tmp/biwi]

Prints the mean-point baseline and the trained model's error, both in pixels of the 640x480 frames.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.fixtures import BIWI_CAL  # noqa: E402  (the calibration file the tests use)


def write_tree(root: Path, people: list[str], frames: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    fx, cx, cy = 517.679, 320.0, 240.5
    for person in people:
        folder = root / person
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rgb.cal").write_text(BIWI_CAL)
        skin = tuple(int(v) for v in rng.uniform([150, 100, 80], [240, 190, 160]))
        for k in range(frames):
            z = rng.uniform(800, 1300)
            x, y = rng.uniform(-0.45, 0.45) * z * cx / fx, rng.uniform(-0.35, 0.35) * z * cy / fx
            u, v = x * fx / z + cx, y * fx / z + cy
            image = Image.fromarray(rng.integers(40, 200, size=(12, 16, 3), dtype=np.uint8)).resize((640, 480), Image.BICUBIC)
            draw = ImageDraw.Draw(image)
            rx, ry = 90000 / z, 120000 / z
            draw.ellipse([u - rx, v - ry * 0.9, u + rx, v + ry * 1.1], fill=skin)
            draw.ellipse([u - rx, v - ry, u + rx, v - ry * 0.2], fill=(40, 30, 25))  # hair
            image = image.filter(ImageFilter.GaussianBlur(1.5))
            image.save(folder / f"frame_{k:05d}_rgb.jpg", quality=90)
            (folder / f"frame_{k:05d}_pose.txt").write_text(
                "1 0 0 \n0 1 0 \n0 0 1 \n\n" f"{x:.4f} {y:.4f} {z:.4f} \n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("/tmp/biwi-synthetic"))
    parser.add_argument("--model", default="convnet")
    args = parser.parse_args()
    root = args.out / "data"
    if not root.exists():
        write_tree(root, ["01", "02", "03", "04", "05", "06"], args.frames)
    from fishbear.formats.biwi import BiwiReader

    catalog = BiwiReader(valid_folders=["03"], test_folders=["04"])(root)
    train = np.array([s.target[0] for s in catalog.splits["train"]])
    test = np.array([s.target[0] for s in catalog.splits["test"]])
    print(f"mean-point baseline on test: {np.linalg.norm(test - train.mean(0), axis=1).mean():.1f} px "
          f"({len(train)} train, {len(catalog.splits['valid'])} valid, {len(test)} test frames)", flush=True)
    subprocess.run([sys.executable, "-m", "fishbear.train", "data=biwi", f"data.root={root}", "data.source=null",
                    "data.reader.folder=.", "data.reader.valid_folders=[03]", "data.reader.test_folders=[04]",
                    "data.image_size=[120,160]", "model=point_regressor", f"model.arch={args.model}",
                    f"trainer.max_epochs={args.epochs}", "trainer.enable_progress_bar=false",
                    f"hydra.run.dir={args.out / 'run'}"], check=True, cwd=REPO)


if __name__ == "__main__":
    main()
