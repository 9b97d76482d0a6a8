"""A second shift, of another kind than the fish camera's: the bears photographed through murky
yellow-green water (issue 38). Not a fish-only trick if adapting helps here too.

Per seed: the README's bears recipe (MobileNetV2 ImageNet, ``fine_tune``, 4 epochs, 224 px) trained
on ``../shared/data/bears/train``; its 115 test photos given a colour cast and lower contrast (each
channel ``x * gain + offset``, the gains and offsets below) and written as a folder, which
``fishbear adapt frames=...`` reads without its labels (the class folders are not read by adapt).
Accuracy on the cast photos, unadapted and adapted, and on the clear photos with the adapted model
(what adapting costs on the old pictures).

    python experiments/adapt/bears.py --seeds 1,2,3 [--variants none,colour,bn,tent,colour+bn] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import VARIANTS, fish  # noqa: E402  (the fish script's variants and its spread over seeds)

GAIN, OFFSET = np.array([0.5, 0.7, 0.45]), np.array([0.3, 0.25, 0.05])
RECIPE = ["data=bears", "model=mobilenet_v2", "model.pretrained=true", "trainer.max_epochs=4", "trainer.lr=2e-3",
          "trainer.lr_div=100", "trainer.lr_spread=body_head", "data.augment.crop_scale=[0.5,1.0]", "logger=none"]


def cast(path: Path) -> Image.Image:
    x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255 * GAIN + OFFSET
    return Image.fromarray((x.clip(0, 1) * 255).round().astype(np.uint8))


def cast_folder(test: Path, out: Path) -> list[tuple[Path, str]]:
    """The test photos cast, as ``out/<class>/<name>.png``; (cast file, class) each."""
    items = []
    for path in sorted(p for p in test.rglob("*") if p.is_file()):
        target = out / path.parent.name / f"{path.stem}.png"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            cast(path).save(target)
        items.append((target, path.parent.name))
    return items


def accuracy(ckpt: Path, items: list[tuple[Path, str]]) -> float:
    from fishbear.engine.inference import Predictor

    answers = dict(Predictor.from_checkpoint(ckpt).predict_files([p for p, _ in items]))
    return float(np.mean([answers[p]["label"] == label for p, label in items]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--variants", default="none,colour,bn,tent,colour+bn")
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="adapt_bears_"))
    bears = args.shared / "bears"
    clear = [(p, p.parent.name) for p in sorted((bears / "test").rglob("*")) if p.is_file()]
    murky = cast_folder(bears / "test", root / "murky")
    results: dict[str, list[dict]] = {v: [] for v in args.variants.split(",")}
    for seed in (int(s) for s in args.seeds.split(",")):
        run = root / f"seed{seed}" / "run"
        if not (run / "checkpoints" / "best.ckpt").is_file():
            subprocess.run([sys.executable, "-m", "fishbear", "train", *RECIPE, f"data.root={bears}", f"seed={seed}",
                            f"hydra.run.dir={run}"], check=True, stdout=subprocess.DEVNULL)
        for variant in results:
            model = run / "checkpoints" / "best.ckpt"
            if VARIANTS[variant]:
                out = root / f"seed{seed}" / f"adapted_{variant}"
                subprocess.run([sys.executable, "-m", "fishbear", "adapt", f"ckpt={model}", f"frames={root / 'murky'}",
                                f"method={VARIANTS[variant]}", f"out={out}", "overwrite=true"], check=True,
                               stdout=subprocess.DEVNULL)
                model = out / "checkpoints" / "best.ckpt"
            row = {"seed": seed, "murky": accuracy(model, murky), "clear": accuracy(model, clear)}
            results[variant].append(row)
            print(f"seed {seed} {variant}: murky acc {row['murky']:.3f}, clear acc {row['clear']:.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"gain": GAIN.tolist(), "offset": OFFSET.tolist(), "results": results}, indent=1))
    for variant, rows in results.items():
        print(f"bears {variant}: murky acc {fish.spread([r['murky'] for r in rows])}; clear acc "
              f"{fish.spread([r['clear'] for r in rows])}")


if __name__ == "__main__":
    main()
