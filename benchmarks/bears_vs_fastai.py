"""fishbear against fastai on the same bears folder, same machine, one after the other.

The task's reference: fastai 2.8.12, ``vision_learner(dls, mobilenet_v2)``, ImageNet weights,
``fine_tune(3)`` (one frozen epoch, three unfrozen), 224 px, batch 32, 20% of train held out,
test accuracy on the ``test/`` folder. fishbear runs the same recipe through its CLI
(``callbacks=finetune``, default logger and callbacks). Printed: test accuracy, seconds per epoch (fit time / 4, validation
included), and fishbear's seconds per epoch as a ratio of fastai's.

fastai is not a fishbear dependency; install it beside (its metadata pins nothing we need):
    pip install --target /tmp/fastai_env --no-deps fastai==2.8.12 fastcore fasttransform \
        fastdownload "fastprogress==1.0.3" "plum-dispatch<2.10" beartype rich
    PYTHONPATH=/tmp/fastai_env python benchmarks/bears_vs_fastai.py --data ../shared/data/bears

    python benchmarks/bears_vs_fastai.py --data DIR [--skip-fastai] [--rounds 1] [--seed 42] [fishbear overrides]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

FISHBEAR_RECIPE = [
    "data=bears", "model=mobilenet_v2", "model.pretrained=true", "callbacks=finetune",
    "trainer.max_epochs=4", "trainer.lr=2e-3", "trainer.lr_div=100", "data.batch_size=32", "data.image_size=224",
    "data.augment.crop_scale=[0.5,1.0]",  # the fastai side: RandomResizedCrop(224, min_scale=0.5)
    "trainer.lr_spread=body_head",  # fastai: one rate for the body, one for the head
]


def run_fastai(data: Path, seed: int = 42) -> dict:
    """fastai's bears lesson recipe, timed per fit; runs in a subprocess so its imports stay apart."""
    script = f"""
import json, time, warnings
warnings.filterwarnings("ignore")
from fastai.vision.all import *
path = Path({str(data)!r})
set_seed({seed}, reproducible=True)
dls = ImageDataLoaders.from_folder(path, train="train", valid_pct=0.2, seed={seed}, bs=32,
    item_tfms=RandomResizedCrop(224, min_scale=0.5), batch_tfms=aug_transforms(), num_workers=1)
# fastai has no model_meta for torchvision's mobilenet_v2 (and vision_learner drops cut=): body = .features,
# two parameter groups (body, head), the V1 ImageNet weights (mobilenet_v2-b0353104.pth)
model_meta[models.mobilenet_v2] = dict(cut=-1, split=default_split, stats=imagenet_stats, weights="IMAGENET1K_V1")
learn = vision_learner(dls, models.mobilenet_v2, metrics=accuracy)
started = time.perf_counter()
with learn.no_bar(), learn.no_logging():
    learn.fine_tune(3)
fit = time.perf_counter() - started
files = get_image_files(path / "test")
test_dl = learn.dls.test_dl(files, with_labels=True)
with learn.no_bar():
    loss, acc = learn.validate(dl=test_dl)
print("RESULT", json.dumps({{"fit_seconds": fit, "epochs": 4, "test_acc": float(acc), "test_images": len(files)}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy())
    if out.returncode != 0:
        raise SystemExit(f"fastai run failed:\n{out.stderr[-3000:]}")
    line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def run_fishbear(data: Path, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        args = [sys.executable, "-m", "fishbear.train", *FISHBEAR_RECIPE, f"data.root={data}",
                f"hydra.run.dir={run_dir}", *extra]
        out = subprocess.run(args, capture_output=True, text=True, cwd=tmp)
        if out.returncode != 0:
            raise SystemExit(f"fishbear run failed:\n{out.stderr[-3000:]}")
        report = json.loads((run_dir / "report.json").read_text())
    return {"fit_seconds": report["fit_seconds"], "epochs": report["epochs"] if "epochs" in report else 4,
            "test_acc": report["metrics"]["test/acc"], "test_images": report["data"]["sizes"].get("test")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--skip-fastai", action="store_true")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42, help="seed of round 1; round k uses seed + k - 1")
    parser.add_argument("overrides", nargs="*", help="extra fishbear overrides")
    args = parser.parse_args()
    data = args.data.resolve()
    ratios = []
    for round_ in range(1, args.rounds + 1):
        sides = {}
        if not args.skip_fastai:
            sides["fastai"] = run_fastai(data, seed=args.seed + round_ - 1)
        sides["fishbear"] = run_fishbear(data, [f"seed={args.seed + round_ - 1}", *args.overrides])
        for name, result in sides.items():
            per_epoch = result["fit_seconds"] / result["epochs"]
            print(f"round {round_} {name:8s}: test acc {result['test_acc']:.4f} on {result['test_images']} images, "
                  f"fit {result['fit_seconds']:.1f} s = {per_epoch:.1f} s/epoch", flush=True)
        if "fastai" in sides:
            ratio = (sides["fishbear"]["fit_seconds"] / sides["fishbear"]["epochs"]) / (
                sides["fastai"]["fit_seconds"] / sides["fastai"]["epochs"])
            ratios.append(ratio)
            print(f"round {round_} ratio fishbear/fastai seconds per epoch: {ratio:.3f}", flush=True)
    if ratios:
        print(f"median ratio over {len(ratios)} rounds: {sorted(ratios)[len(ratios) // 2]:.3f}")


if __name__ == "__main__":
    main()
