"""fishbear against fastai on the same bears folder, same machine, one after the other.

The task's reference: fastai 2.8.12, ``vision_learner(dls, mobilenet_v2)``, ImageNet weights,
``fine_tune(3)`` (one frozen epoch, three unfrozen), 224 px, batch 32, 20% of ``train/`` held out
for validation, test accuracy on images neither side trained on. fishbear runs the README's
bears command through its CLI: its defaults are that recipe (trainer.fine_tune.classify
and data=bears' augmentation).

Protocols (``--protocol``):
- ``test``: the shared ``test/`` folder;
- ``loko`` (leave one kind out): the file names carry the kind (``black_*``, ``grizzly_*``,
  ``teddys_*``, ``cat.*``, ``dog.*``); for each kind, train on ``train/`` without it and test on
  every image of it (train and test folders): a grizzly never seen, as users' own photos are.

Both sides read only ``train/`` for training and validation: fastai through a ``DataBlock`` whose
items come from ``train/`` alone (``ImageDataLoaders.from_folder(valid_pct=...)`` would take every
image under the folder, ``test/`` included, and train on most of the test set). Printed per run:
test accuracy with its Wilson 95% interval, seconds per image seen (fit time over epochs x
(train + valid images)); per side, the mean over seeds with a t interval.

fastai is not a fishbear dependency; install it beside (its metadata pins nothing we need):
    pip install --target /tmp/fastai_env --no-deps fastai==2.8.12 fastcore fasttransform \
        fastdownload "fastprogress==1.0.3" "plum-dispatch<2.10" beartype rich requests pandas \
        urllib3 charset-normalizer idna certifi python-dateutil pytz tzdata
    PYTHONPATH=/tmp/fastai_env python benchmarks/bears_vs_fastai.py --data ../shared/data/bears

    python benchmarks/bears_vs_fastai.py --data DIR [--protocol test|loko] [--seeds 42 43 44]
        [--skip-fastai] [--json OUT] [fishbear overrides]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# the README's bears command: the defaults of a pretrained classifier (fastai's fine_tune rates, the
# trainer.fine_tune.classify) and of data=bears (fastai's crop, zoom, warp, rotate, lighting)
FISHBEAR_RECIPE = ["data=bears", "model=mobilenet_v2", "model.pretrained=true", "trainer.max_epochs=4"]


def run_fastai(data: Path, seed: int = 42) -> dict:
    """fastai's bears lesson recipe on ``train/`` only, timed per fit; a subprocess keeps its
    imports apart."""
    script = f"""
import json, time, warnings
warnings.filterwarnings("ignore")
from functools import partial
from fastai.vision.all import *
path = Path({str(data)!r})
set_seed({seed}, reproducible=True)
block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=partial(get_image_files, folders=["train"]),
                  splitter=RandomSplitter(valid_pct=0.2, seed={seed}), get_y=parent_label,
                  item_tfms=RandomResizedCrop(224, min_scale=0.5), batch_tfms=aug_transforms())
dls = block.dataloaders(path, bs=32, num_workers=1)
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
print("RESULT", json.dumps({{"fit_seconds": fit, "epochs": 4, "test_acc": float(acc), "test_images": len(files),
                            "train_images": len(dls.train_ds), "valid_images": len(dls.valid_ds)}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy())
    if out.returncode != 0:
        raise SystemExit(f"fastai run failed:\n{out.stderr[-3000:]}")
    line = next(row for row in out.stdout.splitlines() if row.startswith("RESULT "))
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
    sizes = report["data"]["sizes"]
    return {"fit_seconds": report["fit_seconds"], "epochs": report.get("epochs", 4),
            "test_acc": report["metrics"]["test/acc"], "test_images": sizes.get("test"),
            "train_images": sizes["train"], "valid_images": sizes["valid"],
            "duplicates": report["data"].get("duplicates", {}).get("images_with_copy_in_another_split")}


KIND = re.compile(r"^([a-z]+)[_.]")


def leave_one_kind_out(data: Path, kind: str, into: Path) -> Path:
    """A bears tree (links) whose ``train/`` lacks ``kind`` and whose ``test/`` is every ``kind`` image."""
    for split in ("train", "test"):
        for label_dir in sorted((data / split).iterdir()):
            for image in sorted(label_dir.iterdir()):
                found = KIND.match(image.name)
                held = found is not None and found.group(1) == kind
                if split == "train" and not held:
                    target = into / "train" / label_dir.name / image.name
                elif held:
                    target = into / "test" / label_dir.name / f"{split}-{image.name}"
                else:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(image.resolve())
    return into


def kinds_of(data: Path) -> list[str]:
    return sorted({m.group(1) for p in (data / "train").glob("*/*") if (m := KIND.match(p.name))})


def wilson(accuracy: float, n: int) -> tuple[float, float]:
    from fishbear.reports.intervals import wilson as interval

    return interval(round(accuracy * n), n)


def mean_interval(values: list[float]) -> str:
    from scipy.stats import t

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return f"{v.mean():.4f}"
    half = float(t.ppf(0.975, len(v) - 1)) * v.std(ddof=1) / np.sqrt(len(v))
    return f"{v.mean():.4f} ± {v.std(ddof=1):.4f} (95% t interval {v.mean() - half:.4f}-{v.mean() + half:.4f}, {len(v)} runs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--protocol", choices=("test", "loko"), default="test")
    parser.add_argument("--skip-fastai", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--kinds", nargs="*", help="loko: the kinds to leave out (default: all)")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("overrides", nargs="*", help="extra fishbear overrides")
    args = parser.parse_args()
    data = args.data.resolve()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.protocol == "test":
            cases = [("test", data)]
        else:
            cases = [(f"without {k}", leave_one_kind_out(data, k, Path(tmp) / k)) for k in (args.kinds or kinds_of(data))]
        for case, root in cases:
            for seed in args.seeds:
                sides = {}
                if not args.skip_fastai:
                    sides["fastai"] = run_fastai(root, seed=seed)
                sides["fishbear"] = run_fishbear(root, [f"seed={seed}", f"data.split_seed={seed}", *args.overrides])
                for name, result in sides.items():
                    seen = result["epochs"] * (result["train_images"] + result["valid_images"])
                    low, high = wilson(result["test_acc"], result["test_images"])
                    result.update(side=name, case=case, seed=seed, seconds_per_image=result["fit_seconds"] / seen,
                                  acc_low=low, acc_high=high)
                    runs.append(result)
                    print(f"{case} seed {seed} {name:8s}: test acc {result['test_acc']:.4f} [{low:.4f}, {high:.4f}] "
                          f"on {result['test_images']} images; trained on {result['train_images']} "
                          f"(+{result['valid_images']} valid); {1000 * result['seconds_per_image']:.1f} ms per image",
                          flush=True)
    print()
    for case in dict.fromkeys(r["case"] for r in runs):
        for side in ("fastai", "fishbear"):
            mine = [r for r in runs if r["case"] == case and r["side"] == side]
            if mine:
                print(f"{case} {side:8s}: test acc {mean_interval([r['test_acc'] for r in mine])}; "
                      f"ms per image {mean_interval([1000 * r['seconds_per_image'] for r in mine])}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
