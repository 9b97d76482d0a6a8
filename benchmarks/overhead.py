"""fishbear's overhead over a plain PyTorch training loop, measured in one process.

Both sides train the same network (same config, same seed) on the same in-memory batches for the
same number of optimiser steps, with the same optimiser and one-cycle schedule. The fishbear side
is composed by Hydra from the real config tree and run by Lightning's Trainer with the default
callbacks (checkpointing, learning-rate monitor, batch grid), the TensorBoard logger and the
progress bar; the plain side is a bare ``for`` loop on the same device, with the same precision
(autocast) and memory format. Only the steps after a warm-up are timed.
Rounds alternate (plain, fishbear, plain, ...); the figure is the median over rounds of the
ratio within each round, so a noisy neighbour on a shared machine, which slows whole stretches
of time, weighs on both sides of a ratio alike. Many short rounds (30 of 50 steps) rather than a
few long ones: a slow stretch then spoils a round or two, not the median.

    python benchmarks/overhead.py [--model convnet] [--steps 120] [--batch-size 32] [--image-size 64] [overrides]

It prints the per-step ratio (plain seconds a step / fishbear seconds a step, the
steady-state cost) and each side's fixed cost (wall time not explained by its steps).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
from torch.utils.data import DataLoader, Dataset

import fishbear
from fishbear.engine.config import instantiate
from fishbear.engine.experiment import build_trainer
from fishbear.engine.settings import TrainerSettings
from fishbear.training.optim import build_optimizer, build_scheduler

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
        from fishbear.data.feed import Feed

        self.feed = Feed(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # pictures already normalised

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False, drop_last=True)


class StepTimer(L.Callback):
    """Times the steps after the warm-up: the clock starts before optimiser step ``warmup`` and
    stops after the last one, counted over the whole fit (``trainer.global_step``), so steps that
    run past one epoch are timed once. It synchronises the GPU only at those two points, as the
    plain loop does (a sync after every step would serialise the fishbear side alone)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0
        self.first_step_start = self.first_step = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == 0 and not self.first_step_start:
            self.first_step_start = time.perf_counter()
        if step == 1 and not self.first_step:
            self.first_step = time.perf_counter() - self.first_step_start
        if step == self.warmup and not self.start:
            _sync()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= trainer.max_steps:
            _sync()
            self.end = time.perf_counter()


CUDA = torch.cuda.is_available()  # asked once: each call opens the NVML library (~0.2 ms)


def _sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def compose_run(out_dir: str, overrides: list[str]):
    """The config ``python -m fishbear.train OVERRIDES`` would run, its run folder at ``out_dir``
    (also benchmarks/loader.py's)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = out_dir
    return cfg


def compose_cfg(model: str, steps: int, out_dir: str, extra: list[str]):
    return compose_run(out_dir, [f"model={model}", f"trainer.max_steps={steps}", "trainer.max_epochs=1",
                                 "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0", *extra])


@dataclass
class Timing:
    """One side of one round: seconds per optimiser step after the warm-up, and the fixed cost, the
    rest of the side's wall time (building the network and Trainer, compiling, the warm-up steps'
    excess over the steady rate, end-of-fit checkpoints and teardown)."""

    per_step: float
    fixed: float
    first_step: float


def run_fishbear(cfg, data: InMemoryData, classes: list[str], warmup: int, steps: int) -> Timing:
    began = time.perf_counter()
    torch.manual_seed(0)
    network = instantiate(cfg.model, "model", num_classes=len(classes))
    settings = TrainerSettings.from_config(cfg.trainer)
    task = instantiate(cfg.task, "task", network=network, classes=classes, **settings.task_args())
    timer = StepTimer(warmup)
    trainer = build_trainer(cfg, settings, Path(cfg.paths.output_dir), extra_callbacks=(timer,))
    trainer.fit(task, datamodule=data)
    _sync()
    wall = time.perf_counter() - began
    per_step = (timer.end - timer.start) / (steps - warmup)
    return Timing(per_step, wall - steps * per_step, timer.first_step - per_step)


def run_plain(cfg, data: InMemoryData, classes: list[str], warmup: int, steps: int) -> Timing:
    """The same network, optimiser, schedule, device, precision, memory format and compilation
    in a bare loop."""
    began = time.perf_counter()
    torch.manual_seed(0)
    network = instantiate(cfg.model, "model", num_classes=len(classes))
    settings = TrainerSettings.from_config(cfg.trainer)
    optim, channels_last = settings.optim, settings.channels_last
    use_cuda = CUDA and settings.lightning.accelerator in ("auto", "gpu", "cuda")
    device = torch.device("cuda" if use_cuda else "cpu")
    precision = str(settings.lightning.precision)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(enabled=dtype is torch.float16)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    network.to(device, memory_format=memory_format)
    if settings.compile:
        network.compile()
    optimizer = build_optimizer(network, optim)
    scheduler = build_scheduler(optimizer, optim, steps)
    network.train()
    start = first_step = 0.0
    step_began = time.perf_counter()
    for i, batch in enumerate(data.train_dataloader()):
        if i == steps:
            break
        if i == 1:
            first_step = time.perf_counter() - step_began
        if i == warmup:
            _sync()
            start = time.perf_counter()
        step_began = time.perf_counter()
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
    end = time.perf_counter()
    per_step = (end - start) / (steps - warmup)
    return Timing(per_step, end - began - steps * per_step, first_step - per_step)


def start_up_seconds() -> tuple[float, float]:
    """Wall time of a fresh Python importing what a fishbear run imports (torch, Lightning, Hydra,
    the task, data and kinds), and of one importing torch alone: the process's fixed start-up."""
    import subprocess
    import sys

    def wall(code: str) -> float:
        runs = []
        for _ in range(3):
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            runs.append(time.perf_counter() - began)
        return statistics.median(runs)

    modules = "fishbear.train, fishbear.engine.experiment, fishbear.kinds.base_task, fishbear.engine.datamodule, lightning"
    return (wall(f"import {modules}"),
            wall("import torch"))


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", message=".*val_dataloader.*")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="convnet")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. trainer=gpu trainer.compile=true")
    args = parser.parse_args()

    classes = ["a", "b", "c", "d"]
    dataset = InMemory(args.steps * args.batch_size, args.image_size, len(classes))
    data = InMemoryData(dataset, args.batch_size)
    timings: dict[str, list[Timing]] = {"plain": [], "fishbear": []}
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_cfg(args.model, args.steps, out, [f"data.image_size={args.image_size}",
                                                        f"data.batch_size={args.batch_size}", *args.overrides])
        device = "cpu" if not CUDA else torch.cuda.get_device_name(0)
        print(f"model={args.model} batch={args.batch_size} image={args.image_size}px steps={args.steps} "
              f"(timed after {args.warmup}) device={device} threads={torch.get_num_threads()} "
              f"overrides={args.overrides}")
        for round_ in range(1, args.rounds + 1):
            for side, fn in (("plain", run_plain), ("fishbear", run_fishbear)):
                timings[side].append(fn(cfg, data, classes, args.warmup, args.steps))
            plain, ours = timings["plain"][-1], timings["fishbear"][-1]
            print(f"round {round_}: step plain {plain.per_step * 1e3:7.2f} ms  fishbear {ours.per_step * 1e3:7.2f} ms"
                  f"  ratio {plain.per_step / ours.per_step:.3f}   fixed plain {plain.fixed:5.2f} s"
                  f"  fishbear {ours.fixed:5.2f} s", flush=True)
    ratios = sorted(p.per_step / f.per_step for p, f in zip(timings["plain"], timings["fishbear"]))
    median = statistics.median(ratios)

    def med(side: str, field: str) -> float:
        return statistics.median(getattr(t, field) for t in timings[side])

    for side, name in (("plain", "plain PyTorch loop"), ("fishbear", "fishbear (Hydra + Lightning)")):
        print(f"\n{name}: {args.batch_size / med(side, 'per_step'):.1f} images/s "
              f"({med(side, 'per_step') * 1e3:.2f} ms a step), fixed cost {med(side, 'fixed'):.2f} s "
              f"(first step {med(side, 'first_step'):.2f} s over the steady rate)", end="")
    print(f"\n\nper-step ratio fishbear/plain: median {median:.3f} over {len(ratios)} rounds "
          f"(range {ratios[0]:.3f}-{ratios[-1]:.3f}; goal >= 0.97); ratio of the median steps "
          f"{med('plain', 'per_step') / med('fishbear', 'per_step'):.3f}")
    print(f"fixed cost of a fishbear fit over the plain loop's: {med('fishbear', 'fixed') - med('plain', 'fixed'):.2f} s "
          "(Trainer set-up, the first batch's picture, end-of-fit checkpoints)")
    ours, torch_alone = start_up_seconds()
    print(f"start-up of a fresh process: {ours:.2f} s to import what a run imports, {torch_alone:.2f} s of it "
          "for torch alone (median of 3)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
