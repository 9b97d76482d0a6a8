"""fishbear's overhead over a plain PyTorch training loop, measured in one process.

Both sides train the same network (same config, same seed) on the same in-memory batches for the
same number of optimiser steps, with the same optimiser and one-cycle schedule. The fishbear side
is composed by Hydra from the real config tree and run by Lightning's Trainer with the default
callbacks (checkpointing, learning-rate monitor, batch grid), the TensorBoard logger and the
progress bar; the plain side is a bare ``for`` loop on the same device, with the same precision
(autocast) and memory format. Only the steps after a warm-up are timed.
Rounds alternate (plain, fishbear, plain, ...); the figure is the median over rounds of the
ratio within each round, so a noisy neighbour on a shared machine, which slows whole stretches
of time, weighs on both sides of a ratio alike.

    python benchmarks/overhead.py [--model convnet] [--steps 45] [--batch-size 32] [--image-size 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
from torch.utils.data import DataLoader, Dataset

import fishbear
from fishbear.config import instantiate, instantiate_group
from fishbear.optim import build_optimizer, build_scheduler
from fishbear.experiment import split_trainer_config

CONF_DIR = str(Path(fishbear.__file__).parent / "conf")


class InMemory(Dataset):
    def __init__(self, n: int, image_size: int, num_classes: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, image_size, image_size, generator=g)
        self.targets = torch.randint(0, num_classes, (n,), generator=g)
        self.size = torch.tensor([image_size, image_size])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        # the keys of fishbear.data.dataset.ImageDataset's items (``size``: the original height, width)
        return {"image": self.images[i], "target": self.targets[i], "index": i, "size": self.size}


class InMemoryData(L.LightningDataModule):
    """Stands in for ImageDataModule so both sides read identical tensors (no decoding)."""

    def __init__(self, dataset: InMemory, batch_size: int) -> None:
        super().__init__()
        self.dataset, self.batch_size = dataset, batch_size
        self.mean, self.std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False, drop_last=True)


class StepTimer(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            _sync()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        _sync()
        self.end = time.perf_counter()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def compose_cfg(model: str, steps: int, out_dir: str, extra: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", f"trainer.max_steps={steps}", "trainer.max_epochs=1",
                                          "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
                                          *extra], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = out_dir
    return cfg


def run_fishbear(cfg, data: InMemoryData, classes: list[str], warmup: int, steps: int) -> float:
    torch.manual_seed(0)
    network = instantiate(cfg.model, "model", num_classes=len(classes))
    lightning_cfg, optim, channels_last = split_trainer_config(cfg.trainer)
    task = instantiate(cfg.task, "task", network=network, classes=classes, optim=optim, channels_last=channels_last)
    timer = StepTimer(warmup)
    callbacks = instantiate_group(cfg.callbacks, "callbacks") + [timer]
    loggers = instantiate_group(cfg.logger, "logger")
    trainer = instantiate(lightning_cfg, "trainer", callbacks=callbacks, logger=loggers,
                          default_root_dir=cfg.paths.output_dir)
    trainer.fit(task, datamodule=data)
    return (steps - warmup) * data.batch_size / (timer.end - timer.start)


def run_plain(cfg, data: InMemoryData, classes: list[str], warmup: int, steps: int) -> float:
    """The same network, optimiser, schedule, device, precision and memory format in a bare loop."""
    torch.manual_seed(0)
    network = instantiate(cfg.model, "model", num_classes=len(classes))
    lightning_cfg, optim, channels_last = split_trainer_config(cfg.trainer)
    use_cuda = torch.cuda.is_available() and lightning_cfg.accelerator in ("auto", "gpu", "cuda")
    device = torch.device("cuda" if use_cuda else "cpu")
    precision = str(lightning_cfg.precision)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(enabled=dtype is torch.float16)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    network.to(device, memory_format=memory_format)
    optimizer = build_optimizer(network, optim)
    scheduler = build_scheduler(optimizer, optim, steps)
    network.train()
    start = 0.0
    for i, batch in enumerate(data.train_dataloader()):
        if i == steps:
            break
        if i == warmup:
            _sync()
            start = time.perf_counter()
        images = batch["image"].to(device, non_blocking=True).contiguous(memory_format=memory_format)
        targets = batch["target"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(network(images), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
    _sync()
    return (steps - warmup) * data.batch_size / (time.perf_counter() - start)


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", message=".*val_dataloader.*")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="convnet")
    parser.add_argument("--steps", type=int, default=45)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. trainer=gpu")
    args = parser.parse_args()

    classes = ["a", "b", "c", "d"]
    dataset = InMemory(args.steps * args.batch_size, args.image_size, len(classes))
    data = InMemoryData(dataset, args.batch_size)
    rates: dict[str, list[float]] = {"plain": [], "fishbear": []}
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_cfg(args.model, args.steps, out, [f"data.image_size={args.image_size}", *args.overrides])
        device = "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(0)
        print(f"model={args.model} batch={args.batch_size} image={args.image_size}px steps={args.steps} "
              f"(timed after {args.warmup}) device={device} threads={torch.get_num_threads()}")
        for round_ in range(1, args.rounds + 1):
            for side, fn in (("plain", run_plain), ("fishbear", run_fishbear)):
                rates[side].append(fn(cfg, data, classes, args.warmup, args.steps))
            ratio = rates["fishbear"][-1] / rates["plain"][-1]
            print(f"round {round_}: plain {rates['plain'][-1]:7.1f}  fishbear {rates['fishbear'][-1]:7.1f} images/s"
                  f"  ratio {ratio:.3f}", flush=True)
    ratios = sorted(f / p for f, p in zip(rates["fishbear"], rates["plain"]))
    median = statistics.median(ratios)
    print(f"\nplain PyTorch loop: median {statistics.median(rates['plain']):.1f} images/s")
    print(f"fishbear (Hydra + Lightning): median {statistics.median(rates['fishbear']):.1f} images/s")
    print(f"ratio fishbear/plain: median {median:.3f} over {len(ratios)} rounds "
          f"(range {ratios[0]:.3f}-{ratios[-1]:.3f}; goal >= 0.97)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
