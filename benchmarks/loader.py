"""Does the loader keep the model fed? Real-data training against synthetic-data training.

For a run's config (the default run unless overrides say otherwise) this builds the real data
module and task, then measures, in one process, alternating over rounds:

- the loader alone: images per second of ``train_dataloader()`` (decode, augment, collate, with
  the configured workers), after its first batch;
- training on the real loader: fishbear's Trainer (``fishbear.engine.experiment.build_trainer``), steps
  after a warm-up;
- training on synthetic data: the same task and Trainer fed batches already in memory (copies of
  one real batch), so the only difference is where the images come from.

The ratio real / synthetic is the share of the model's own speed the loader lets it reach
(1.0: the model never waits). The goal is 0.9 or more.

    python benchmarks/loader.py                       # the default run (shapes, convnet, 64 px)
    python benchmarks/loader.py data=bears model=resnet34 data.image_size=224
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
from overhead import CUDA, StepTimer, _sync, compose_run  # beside this script: the same timer and composition
from torch.utils.data import DataLoader

from fishbear.engine.experiment import build_experiment, build_trainer
from fishbear.engine.settings import TrainerSettings


class Synthetic(L.LightningDataModule):
    """Stands in for the data module with batches already in memory: the model's own step rate."""

    def __init__(self, real: L.LightningDataModule, batch: dict, steps: int) -> None:
        super().__init__()
        self.real, self.batch, self.steps = real, batch, steps

    def __getattr__(self, name: str):  # classes, mean, std, ... as the real module has them
        if name in ("real", "batch", "steps"):
            raise AttributeError(name)
        return getattr(self.real, name)

    def on_after_batch_transfer(self, batch, dataloader_idx):  # noqa: ANN001,ANN201
        return self.real.on_after_batch_transfer(batch, dataloader_idx)  # the uint8 pictures normalised on the device

    def train_dataloader(self) -> DataLoader:
        batches = [self.batch] * self.steps
        return DataLoader(batches, batch_size=None, shuffle=False, pin_memory=self.real.loader.pin_memory)


def compose_cfg(overrides: list[str], out_dir: str, steps: int):
    return compose_run(out_dir, [f"trainer.max_steps={steps}", "trainer.max_epochs=1000", "trainer.limit_val_batches=0",
                                 "trainer.num_sanity_val_steps=0", "logger=none", "callbacks=none",
                                 "trainer.enable_progress_bar=false", *overrides])


def loader_rate(datamodule, batches: int) -> float:
    """Images per second of the real train loader, after its first batch (worker start-up)."""
    seen, start = 0, 0.0
    for i, batch in enumerate(datamodule.train_dataloader()):
        if i == 0:
            start = time.perf_counter()
            continue
        seen += len(batch["image"])
        if i == batches:
            break
    return seen / (time.perf_counter() - start)


def training_rate(cfg, datamodule, warmup: int, steps: int) -> float:
    """Images per second of fishbear's training steps on ``datamodule`` (after ``warmup`` steps)."""
    settings = TrainerSettings.from_config(cfg.trainer)
    torch.manual_seed(0)
    _, task = build_experiment(cfg, settings)
    timer = StepTimer(warmup)
    trainer = build_trainer(cfg, settings, Path(cfg.paths.output_dir), extra_callbacks=(timer,))
    trainer.fit(task, datamodule=datamodule)
    _sync()
    return (steps - warmup) * datamodule.batch_size / (timer.end - timer.start)


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the run, e.g. data=bears model=resnet34")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out:
        cfg = compose_cfg(args.overrides, out, args.steps)
        datamodule, _ = build_experiment(cfg, TrainerSettings.from_config(cfg.trainer))
        batch = next(iter(datamodule.train_dataloader()))
        synthetic = Synthetic(datamodule, batch, args.steps + 1)
        device = "cpu" if not CUDA else torch.cuda.get_device_name(0)
        print(f"data={datamodule.name} model={cfg.model._target_.rsplit('.', 1)[-1]}"
              f"({cfg.model.get('arch', '')}) image={datamodule.image_size} batch={datamodule.batch_size} "
              f"workers={datamodule.loader.num_workers} train images={len(datamodule.dataset('train'))} "
              f"device={device} threads={torch.get_num_threads()} overrides={args.overrides}", flush=True)
        rates: dict[str, list[float]] = {"loader": [], "real": [], "synthetic": []}
        for round_ in range(1, args.rounds + 1):
            rates["loader"].append(loader_rate(datamodule, min(args.steps, len(datamodule.train_dataloader()) - 1)))
            rates["synthetic"].append(training_rate(cfg, synthetic, args.warmup, args.steps))
            rates["real"].append(training_rate(cfg, datamodule, args.warmup, args.steps))
            print(f"round {round_}: loader alone {rates['loader'][-1]:8.1f}  training on synthetic batches "
                  f"{rates['synthetic'][-1]:7.1f}  on the real loader {rates['real'][-1]:7.1f} images/s  "
                  f"ratio {rates['real'][-1] / rates['synthetic'][-1]:.3f}", flush=True)
    ratios = sorted(r / s for r, s in zip(rates["real"], rates["synthetic"]))
    median = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\nloader alone: {median['loader']:.1f} images/s; the model on synthetic batches: "
          f"{median['synthetic']:.1f} images/s; on the real loader: {median['real']:.1f} images/s")
    print(f"ratio real/synthetic: median {statistics.median(ratios):.3f} over {len(ratios)} rounds "
          f"(range {ratios[0]:.3f}-{ratios[-1]:.3f}; goal >= 0.9)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
