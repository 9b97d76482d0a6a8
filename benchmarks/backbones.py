"""CPU speed of the backbone families at 224 px, each as a ratio to torchvision's resnet18 (the
plain baseline) measured in the same run.

Every network is built the way a run builds it (its model config through fishbear's builders,
head sized for 2 classes, random weights: speed does not depend on them), in channels_last as
fishbear trains on a CPU. Two figures per network, each the median of rounds that alternate it with
the baseline (a noisy neighbour slows both sides of a round):

- **predict**: images per second in eval mode under ``inference_mode``, batch 16;
- **train**: images per second of a training step (forward, backward, AdamW), batch 16.

    python benchmarks/backbones.py [--rounds 3] [--json OUT] [--markdown OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from fishbear.engine.checkpoint import build_network
from fishbear.kinds.meta import ModelMeta

BASELINE = ("torchvision", {"_target_": "fishbear.models.torchvision_nets.classifier", "arch": "resnet18"})
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet18 (torchvision)": BASELINE,
    "mobilenet_v2 (torchvision)": ("torchvision", {"_target_": "fishbear.models.torchvision_nets.classifier",
                                                   "arch": "mobilenet_v2"}),
    **{name: ("timm", {"_target_": "fishbear.models.timm_nets.timm_classifier", "name": name}) for name in (
        "resnet18", "resnet50", "convnext_atto", "convnext_tiny", "efficientnet_b0", "mobilenetv3_large_100",
        "regnety_008", "vit_tiny_patch16_224", "vit_small_patch16_224", "swin_tiny_patch4_window7_224")},
}
SIZE, BATCH = 224, 16


def network(cfg: dict[str, Any]) -> torch.nn.Module:
    meta = ModelMeta(kind="classify", classes=("a", "b"), image_size=SIZE, mean=(0.5,) * 3, std=(0.5,) * 3, model_cfg=cfg)
    return build_network(meta).to(memory_format=torch.channels_last)


def images_per_second(net: torch.nn.Module, train: bool, steps: int = 3) -> float:
    x = torch.randn(BATCH, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (BATCH,))
    if train:
        net.train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
    else:
        net.eval()

        def step() -> None:
            with torch.inference_mode():
                net(x)
    step()  # warm
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return BATCH * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated names of FAMILIES")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    baseline = network(BASELINE[1])
    names = [n for n in FAMILIES if not args.only or n in args.only.split(",")]
    rows = []
    for name in names:
        source, cfg = FAMILIES[name]
        net = network(cfg)
        ratios: dict[str, list[float]] = {"predict": [], "train": []}
        absolute: dict[str, list[float]] = {"predict": [], "train": []}
        for _ in range(args.rounds):
            for mode in ("predict", "train"):
                mine = images_per_second(net, mode == "train")
                base = images_per_second(baseline, mode == "train")
                ratios[mode].append(mine / base)
                absolute[mode].append(mine)
        row = {"network": name, "source": source, "parameters_m": sum(p.numel() for p in net.parameters()) / 1e6,
               **{f"{m}_ratio": statistics.median(v) for m, v in ratios.items()},
               **{f"{m}_images_per_s": statistics.median(v) for m, v in absolute.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "torch": torch.__version__, "size": SIZE, "batch": BATCH, "rounds": args.rounds}
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    table = ["| network | from | parameters (M) | predict img/s | x resnet18 | train img/s | x resnet18 |",
             "|---|---|---|---|---|---|---|"]
    table += [f"| {r['network']} | {r['source']} | {r['parameters_m']:.1f} | {r['predict_images_per_s']:.1f} | "
              f"{r['predict_ratio']:.2f} | {r['train_images_per_s']:.1f} | {r['train_ratio']:.2f} |" for r in rows]
    print("\n".join(table))
    if args.markdown:
        args.markdown.write_text("\n".join(table) + "\n")


if __name__ == "__main__":
    main()
