"""Test-time augmentation by mirroring for segmentation (``tta=true``), measured on CamVid's held-out
sequence (issue 40): the part of ``experiments/tta/run.py`` that needs a U-Net of its own.

Per seed, the honest-protocols CamVid recipe (``data=camvid``: SegNet's folders pooled, whole
sequences held out, the test sequence 0016E5; U-Net on an ImageNet MobileNetV2 encoder,
``fine_tune``, 12 epochs) is trained once, then ``fishbear evaluate`` tests its best checkpoint on
the test sequence with and without ``tta``: pixel accuracy (void left out) and mean IoU, as the
run's report gives them. The seconds per picture: the predictor over the 42 frames of the test
sequence in batches of 8, decoding included, with and without ``tta``.

    python experiments/tta/camvid.py --seeds 1,2,3 --runs /tmp/tta_camvid --json experiments/tta/results_camvid.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments" / "adapt"))

from run import fish  # noqa: E402  (experiments/adapt/run.py: fish.spread, the mean and interval of seeds)

RECIPE = ["data=camvid", "model=unet", "model.encoder=mobilenet_v2", "model.pretrained=true",
          "model.weights=IMAGENET1K_V1", "trainer.max_epochs=12", "trainer.lr=3e-3", "trainer.lr_div=10", "logger=none"]
FIGURES = ("pixel_accuracy", "mean_iou")  # the report's segment section: void left out


def fishbear(*argv: str) -> None:
    print("$ fishbear", " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "fishbear", *argv], check=True, stdout=subprocess.DEVNULL)


def report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def seconds_per_picture(ckpt: Path, files: list[Path], tta: bool) -> float:
    from fishbear.engine.inference import Predictor

    predictor = Predictor.from_checkpoint(ckpt, tta=tta)
    started = time.perf_counter()
    for _ in predictor.predict_files(files, batch_size=8):
        pass
    return (time.perf_counter() - started) / len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    data = f"data.root={args.shared / 'camvid'}"
    test_frames = sorted((args.shared / "camvid" / "CamVid").glob("*/0016E5_*.png"))
    test_frames = [f for f in test_frames if not f.parent.name.endswith("annot")]
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        run = args.runs / f"seed{seed}" / "train"
        if not (run / "checkpoints" / "best.ckpt").is_file():
            fishbear("train", *RECIPE, data, f"seed={seed}", f"hydra.run.dir={run}")
        for tta in (False, True):
            where = args.runs / f"seed{seed}" / f"evaluate_tta_{str(tta).lower()}"
            if not (where / "report.json").is_file():
                fishbear("evaluate", f"ckpt={run / 'checkpoints' / 'best.ckpt'}", "data=camvid", data,
                         f"tta={str(tta).lower()}", "logger=none", f"hydra.run.dir={where}")
            tested = report(where)
            rows.append({"seed": seed, "tta": tta, **{k: tested["segment"][k] for k in FIGURES},
                         "seconds_per_picture": seconds_per_picture(run / "checkpoints" / "best.ckpt", test_frames, tta),
                         "pictures": tested["data"]["sizes"]["test"]})
            print(json.dumps(rows[-1]), flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1) + "\n")
    for figure in FIGURES:
        for tta in (False, True):
            print(f"{figure} tta={tta}: {fish.spread([r[figure] for r in rows if r['tta'] == tta])}")
        gains = [b[figure] - a[figure] for a, b in zip(rows[::2], rows[1::2])]
        print(f"{figure} gain per seed: {' '.join(f'{g:+.3f}' for g in gains)}")
    for tta in (False, True):
        seconds = [r["seconds_per_picture"] for r in rows if r["tta"] == tta]
        print(f"tta={tta}: {1000 * sum(seconds) / len(seconds):.0f} ms per picture")


if __name__ == "__main__":
    main()
