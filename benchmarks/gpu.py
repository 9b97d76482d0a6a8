"""One GPU benchmark in one command: how much of the chip fishbear's training reaches, and why.

Rows, all ResNet-50 (by default) at 224 px, batch 128, bf16 autocast, channels_last, fused AdamW and
the one-cycle schedule fishbear builds, in one process:

- ``ceiling``: the batch already on the device (normalised), no loader, no copy: the chip's rate;
- ``plain, uint8 pinned``: a bare loop fed uint8 batches from pinned host memory, copied without
  blocking and normalised on the device: fishbear's data path without fishbear;
- ``plain, float32 pageable``: the same loop fed float32 batches from ordinary host memory (the
  data path fishbear had: 4 bytes a pixel, each copy blocking the host);
- ``fishbear, in memory``: ``fishbear train``'s Trainer, task and callbacks (TensorBoard logger,
  checkpoints, learning-rate monitor, batch picture; the bar off) on the plain loop's batches;
- ``fishbear, JPEG folder``: the real data module (``data=folder``) decoding a folder of JPEGs with
  ``--workers`` loader processes; and the loader alone;
- ``Lightning, in memory``: a bare LightningModule (the same network, loss, optimiser, precision and
  batches, no fishbear callbacks or logger): what Lightning's loop itself costs (with ``fishbear, in
  memory, no callbacks or logger`` and the compiled plain loop and JPEG folder, a row of
  ``--rows`` only: the default rows take about 6 minutes on an H200);
- the compiled rows again with ``torch.compile`` (``trainer.compile=true`` for fishbear), with the
  compilations counted.

Each row runs in a process of its own (a profiler's hooks, a compilation cache or an allocator
setting left by one row must not weigh on the next); compilations are cached on disk by torch, so
the later compiled rows reuse the first one's kernels.

For every row: images per second over the timed steps (after ``--warmup``), the ratio to the
ceiling, and the host-device synchronisations per step, counted by torch.profiler over
``--profile`` further steps (``cudaStreamSynchronize``, ``cudaDeviceSynchronize``,
``cudaEventSynchronize``; and ``cudaMemcpyAsync`` calls). Where fishbear makes more than the plain
loop, the Python lines that synchronised are listed (CUDA's sync debug mode); ``--explain ROWS``
also writes the profiler's busiest operations of those rows (``explain_<row>.txt``). It prints one table
and writes it as JSON and Markdown into ``--out`` (``experiments/gpu/`` by default) under the
device's name.

    PYTHONPATH=. python benchmarks/gpu.py --images ../shared/data/bears/train [--replicate 20] [--workers 12]
    PYTHONPATH=. python benchmarks/gpu.py --device cpu --images ../shared/data/bears/train   # a smoke run of every row

It needs what fishbear's training needs (torch, torchvision, Lightning, torchmetrics, Hydra,
OmegaConf, albumentations, Pillow, numpy; TensorBoard for the logger) and nothing else; it runs from
a checkout with ``PYTHONPATH`` set to it. ``--images`` is an ImageFolder tree (``<class>/*.jpg``) or
its parent; ``--replicate N`` links its files N times into a scratch tree (a larger epoch).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import compose_run  # noqa: E402  (beside this script: the run's config as fishbear composes it)

from fishbear.data.feed import Normalize  # noqa: E402
from fishbear.engine.config import instantiate  # noqa: E402
from fishbear.engine.experiment import build_experiment, build_trainer  # noqa: E402
from fishbear.engine.settings import TrainerSettings  # noqa: E402
from fishbear.training.optim import build_optimizer, build_scheduler  # noqa: E402

SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
TORCH_DIR = str(Path(torch.__file__).parent)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class Row:
    name: str
    images_per_s: float = float("nan")
    syncs_per_step: float | None = None
    copies_per_step: float | None = None
    compiled_graphs: int | None = None
    note: str = ""
    sync_sources: list[str] = field(default_factory=list)
    explained: str = ""


@dataclass
class Setup:
    device: torch.device
    model: str
    batch: int
    size: int
    steps: int
    warmup: int
    profile: int
    workers: int
    precision: str
    dtype: torch.dtype | None


def _sync(setup: Setup) -> None:
    if setup.device.type == "cuda":
        torch.cuda.synchronize()


# -- counting synchronisations -----------------------------------------------------------------------
class Profiled:
    """torch.profiler over a window of steps: the host-device synchronisations and copies in it.
    On a CPU there are none to count: the sync-type tensor operations are counted instead."""

    def __init__(self, setup: Setup) -> None:
        self.setup, self.profiler, self.counter = setup, None, None
        self.syncs = self.copies = 0
        self.table = ""

    def start(self) -> None:
        if self.setup.device.type == "cuda":
            from torch.profiler import ProfilerActivity, profile

            self.profiler = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
            self.profiler.__enter__()
        else:
            from sync_count import SyncCounter

            self.counter = SyncCounter()
            self.counter.__enter__()
            self.counter.armed = True

    def stop(self) -> None:
        if self.profiler is not None:
            _sync(self.setup)
            self.profiler.__exit__(None, None, None)
            names = Counter(event.name for event in self.profiler.events())
            self.syncs = sum(names[n] for n in SYNC_CALLS)
            averages = self.profiler.key_averages()
            try:
                self.table = (averages.table(sort_by="self_cpu_time_total", row_limit=25) + "\n"
                              + averages.table(sort_by="self_device_time_total", row_limit=15))
            except (KeyError, AttributeError, ValueError) as err:  # another torch's column names
                self.table = f"(no table: {err})"
            self.copies = names["cudaMemcpyAsync"] + names["cudaMemcpy"]
            self.profiler = None
        if self.counter is not None:
            self.counter.armed = False
            self.counter.__exit__(None, None, None)
            self.syncs = sum(self.counter.count.values())
            self.counter = None


class SyncSources:
    """CUDA's sync debug mode for a window of steps: each synchronising torch call warns; the
    Python line that made it is counted (the first frame outside torch and Lightning's plumbing)."""

    def __init__(self) -> None:
        self.sources: Counter = Counter()
        self._saved = None

    def start(self) -> None:
        if not torch.cuda.is_available():
            return
        import traceback

        self._saved = warnings.showwarning
        sources = self.sources

        def record(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
            if "synchroniz" not in str(message):
                return
            frames = [f for f in traceback.extract_stack()[:-1]
                      if not f.filename.startswith(TORCH_DIR) and "warnings.py" not in f.filename]
            sources[" <- ".join(f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in frames[-3:][::-1])] += 1

        warnings.showwarning = record
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")

    def stop(self) -> None:
        if self._saved is None:
            return
        torch.cuda.set_sync_debug_mode("default")
        warnings.showwarning = self._saved
        warnings.simplefilter("ignore")


# -- data ---------------------------------------------------------------------------------------------
def uint8_batches(setup: Setup, count: int = 6, classes: int = 2) -> list[dict[str, torch.Tensor]]:
    """Distinct uint8 batches in pinned host memory (as a loader with pin_memory hands them over)."""
    g = torch.Generator().manual_seed(0)
    pin = setup.device.type == "cuda"
    out = []
    for _ in range(count):
        images = torch.randint(0, 256, (setup.batch, 3, setup.size, setup.size), dtype=torch.uint8, generator=g)
        targets = torch.randint(0, classes, (setup.batch,), generator=g)
        out.append({"image": images.pin_memory() if pin else images, "target": targets.pin_memory() if pin else targets,
                    "index": torch.arange(setup.batch), "size": torch.tensor([setup.size, setup.size])})
    return out


class Cycle(torch.utils.data.Dataset):
    """``n`` items cycling over pre-collated batches (a loader with ``batch_size=None``)."""

    def __init__(self, batches: list[dict[str, torch.Tensor]], n: int) -> None:
        self.batches, self.n = batches, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.batches[i % len(self.batches)]


class InMemory(L.LightningDataModule):
    """Pre-collated uint8 batches, normalised on the device as fishbear's data module does."""

    def __init__(self, batches: list[dict[str, torch.Tensor]], n: int, datamodule: Any) -> None:
        super().__init__()
        self.batches, self.n, self.real = batches, n, datamodule

    def __getattr__(self, name: str) -> Any:  # classes, mean, std, ... of the real module
        if name in ("batches", "n", "real"):
            raise AttributeError(name)
        return getattr(self.real, name)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.real.on_after_batch_transfer(batch, dataloader_idx)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(Cycle(self.batches, self.n), batch_size=None, shuffle=False)


def image_folder(source: Path, replicate: int, scratch: Path) -> Path:
    """An ImageFolder tree under ``scratch/train`` with ``replicate`` links of every picture."""
    classes = [p for p in sorted(source.iterdir()) if p.is_dir()]
    if classes and all(p.name in ("train", "valid", "test") for p in classes):
        source = source / "train"
        classes = [p for p in sorted(source.iterdir()) if p.is_dir()]
    if len(classes) < 2:
        raise SystemExit(f"--images {source}: give an ImageFolder tree (<class>/*.jpg, two classes or more)")
    root = scratch / "folder"
    for cls in classes:
        target = root / "train" / cls.name
        target.mkdir(parents=True)
        for i in range(replicate):
            for picture in sorted(cls.glob("*.jp*g")):
                os.symlink(picture.resolve(), target / f"{i:03d}_{picture.name}")
    return root


# -- the plain loop -----------------------------------------------------------------------------------
def plain(setup: Setup, cfg: Any, feed: str, compiled: bool) -> Row:
    """A bare loop: ``feed`` = resident (the batch on the device), uint8 (pinned, normalised on
    the device) or float32 (pageable, normalised on the host)."""
    torch.manual_seed(0)
    network = instantiate(cfg.model, "model", num_classes=2)
    settings = TrainerSettings.from_config(cfg.trainer)
    network.to(setup.device, memory_format=torch.channels_last)
    if compiled:
        network.compile()
    optimizer = build_optimizer(network, settings.optim)
    scheduler = build_scheduler(optimizer, settings.optim, setup.steps + setup.profile)
    normalize = Normalize(MEAN, STD).to(setup.device)
    batches = uint8_batches(setup)
    if feed == "float32":
        batches = [{**b, "image": ((b["image"].float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1))
                                   / torch.tensor(STD).view(1, 3, 1, 1))} for b in batches]  # pageable floats
    resident = [{"image": normalize(b["image"].to(setup.device)).contiguous(memory_format=torch.channels_last),
                 "target": b["target"].to(setup.device)} for b in batches] if feed == "resident" else None
    graphs = _graphs()
    network.train()

    def step(i: int) -> None:
        if resident is not None:
            images, targets = resident[i % len(resident)]["image"], resident[i % len(resident)]["target"]
        else:
            batch = batches[i % len(batches)]
            images = batch["image"].to(setup.device, non_blocking=True)
            targets = batch["target"].to(setup.device, non_blocking=True)
            if feed == "uint8":
                images = normalize(images)
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(setup.device.type, dtype=setup.dtype or torch.float32, enabled=setup.dtype is not None):
            loss = F.cross_entropy(network(images).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()

    for i in range(setup.warmup):
        step(i)
    _sync(setup)
    began = time.perf_counter()
    for i in range(setup.warmup, setup.steps):
        step(i)
    _sync(setup)
    rate = (setup.steps - setup.warmup) * setup.batch / (time.perf_counter() - began)
    profiled = Profiled(setup)
    profiled.start()
    for i in range(setup.steps, setup.steps + setup.profile):
        step(i)
    profiled.stop()
    return Row("", rate, profiled.syncs / setup.profile, profiled.copies / setup.profile,
               _graphs() - graphs if compiled else None, explained=profiled.table)


def _graphs() -> int:
    try:
        from torch._dynamo.utils import counters
    except ImportError:  # pragma: no cover
        return 0
    return int(counters["stats"]["unique_graphs"])


# -- fishbear -------------------------------------------------------------------------------------------
class Window(L.Callback):
    """Times optimiser steps ``warmup``..``steps`` (global steps: across epochs), then profiles the
    next ``profile`` steps, and (``sources``) records where the synchronisations in them come from."""

    def __init__(self, setup: Setup, sources: SyncSources | None) -> None:
        self.setup, self.sources = setup, sources
        self.began = self.ended = 0.0
        self.profiled = Profiled(setup)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        step = trainer.global_step
        if step == self.setup.warmup and not self.began:
            _sync(self.setup)
            self.began = time.perf_counter()
        if step == self.setup.steps and not self.ended:
            _sync(self.setup)
            self.ended = time.perf_counter()
            self.profiled.start()
            if self.sources is not None:
                self.sources.start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step >= trainer.max_steps:
            if self.sources is not None:
                self.sources.stop()
            self.profiled.stop()


def fishbear_row(setup: Setup, overrides: list[str], data: str, compiled: bool, scratch: Path,
                 images: Path | None = None, sources: bool = False) -> tuple[Row, float | None]:
    """fishbear's Trainer on in-memory batches (``data="memory"``) or a JPEG folder; returns the
    row and, for the folder, the loader alone's images per second."""
    out = tempfile.mkdtemp(dir=scratch)
    total = setup.steps + setup.profile
    extra = [f"data.batch_size={setup.batch}", f"data.image_size={setup.size}", f"trainer.max_steps={total}",
             "trainer.max_epochs=-1", "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
             "trainer.enable_progress_bar=false", f"trainer.precision={setup.precision}",
             f"data.num_workers={setup.workers}", "data.duplicates=off", *overrides]
    if compiled:
        extra.append("trainer.compile=true")
    # the folder's data module in both: its classes, normalisation and after-transfer step
    extra += ["data=folder", f"data.root={images}", "data.valid_pct=0.05"]
    cfg = compose_run(out, [f"model={setup.model}", *extra])
    settings = TrainerSettings.from_config(cfg.trainer)
    torch.manual_seed(0)
    datamodule, task = build_experiment(cfg, settings)
    loader_rate = None
    if data == "memory":
        datamodule = InMemory(uint8_batches(setup), total + 1, datamodule)
    else:
        loader_rate = _loader_alone(datamodule, setup)
    record = SyncSources() if sources else None
    window = Window(setup, record)
    graphs = _graphs()
    trainer = build_trainer(cfg, settings, Path(out), extra_callbacks=(window,))
    trainer.fit(task, datamodule=datamodule)
    _sync(setup)
    rate = (setup.steps - setup.warmup) * setup.batch / (window.ended - window.began)
    row = Row("", rate, window.profiled.syncs / setup.profile, window.profiled.copies / setup.profile,
              _graphs() - graphs if compiled else None, explained=window.profiled.table)
    if record is not None:
        row.sync_sources = [f"{n / setup.profile:.2f}/step {where}" for where, n in record.sources.most_common(8)]
    return row, loader_rate


def _loader_alone(datamodule: Any, setup: Setup) -> float:
    """Images per second of the real training loader (decode, augment, collate, pin), after its
    first batch, over as many batches as the timed steps."""
    seen, began = 0, 0.0
    for i, batch in enumerate(_forever(datamodule)):
        if i == 0:
            began = time.perf_counter()
            continue
        seen += len(batch["image"])
        if i == setup.steps - setup.warmup:
            break
    return seen / (time.perf_counter() - began)


def _forever(datamodule: Any):  # noqa: ANN202
    while True:
        yield from datamodule.train_dataloader()


# -- Lightning alone ----------------------------------------------------------------------------------
class BareModule(L.LightningModule):
    """The plain loop's network, loss, optimiser and schedule in a bare LightningModule."""

    def __init__(self, network: torch.nn.Module, settings: Any, total: int) -> None:
        super().__init__()
        self.network, self.settings, self.total = network, settings, total

    def configure_model(self) -> None:
        self.network.to(memory_format=torch.channels_last)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        images = batch["image"].contiguous(memory_format=torch.channels_last)
        return F.cross_entropy(self.network(images).float(), batch["target"])

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.network, self.settings.optim)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": build_scheduler(optimizer, self.settings.optim,
                                                                                       self.total), "interval": "step"}}


def lightning_row(setup: Setup, cfg: Any, scratch: Path) -> Row:
    class Normalized(L.LightningDataModule):
        def __init__(self) -> None:
            super().__init__()
            self.normalize = Normalize(MEAN, STD)

        def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
            from fishbear.data.feed import to_device_images

            batch["image"] = to_device_images(batch["image"], self.normalize)
            return batch

        def train_dataloader(self) -> DataLoader:
            return DataLoader(Cycle(uint8_batches(setup), setup.steps + setup.profile + 1), batch_size=None)

    torch.manual_seed(0)
    settings = TrainerSettings.from_config(cfg.trainer)
    module = BareModule(instantiate(cfg.model, "model", num_classes=2), settings, setup.steps + setup.profile)
    window = Window(setup, None)
    trainer = L.Trainer(accelerator=setup.device.type, devices=1, precision=setup.precision, benchmark=setup.device.type
                        == "cuda", max_steps=setup.steps + setup.profile, max_epochs=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[window], default_root_dir=str(scratch))
    trainer.fit(module, datamodule=Normalized())
    rate = (setup.steps - setup.warmup) * setup.batch / (window.ended - window.began)
    return Row("", rate, window.profiled.syncs / setup.profile, window.profiled.copies / setup.profile, None,
               explained=window.profiled.table)


# -- the run ------------------------------------------------------------------------------------------
ROWS = {  # key: (the table's name, compiled)
    "ceiling": ("ceiling (batch on the device)", False),
    "plain_uint8": ("plain, uint8 pinned", False),
    "plain_float32": ("plain, float32 pageable", False),
    "lightning": ("Lightning, in memory", False),
    "fishbear": ("fishbear, in memory", False),
    "fishbear_bare": ("fishbear, in memory, no callbacks or logger", False),
    "fishbear_folder": ("fishbear, JPEG folder", False),
    "ceiling_compiled": ("ceiling (batch on the device), compiled", True),
    "plain_uint8_compiled": ("plain, uint8 pinned, compiled", True),
    "fishbear_compiled": ("fishbear, in memory, compiled", True),
    "fishbear_folder_compiled": ("fishbear, JPEG folder, compiled", True),
}
# what a plain run measures (about 6 minutes on an H200: each row starts a process, sets CUDA up and
# autotunes cuDNN); the others explain a gap when there is one (--rows lightning,fishbear_bare,...)
DEFAULT_ROWS = ("ceiling", "plain_uint8", "plain_float32", "fishbear", "fishbear_folder", "ceiling_compiled",
                "fishbear_compiled")


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def run_row(key: str, setup: Setup, folder: Path, scratch: Path) -> Row:
    """One row, in this process."""
    name, compiled = ROWS[key]
    trainer = ["trainer=cpu"] if setup.device.type == "cpu" else ["trainer=gpu"]
    base = key.removesuffix("_compiled")
    if base in ("ceiling", "plain_uint8", "plain_float32", "lightning"):
        cfg = compose_run(str(scratch / "plain"), [f"model={setup.model}", *trainer])
        if base == "lightning":
            row = lightning_row(setup, cfg, scratch)
        else:
            row = plain(setup, cfg, {"ceiling": "resident", "plain_uint8": "uint8", "plain_float32": "float32"}[base],
                        compiled)
    else:
        extra = trainer + (["callbacks=none", "logger=none"] if base == "fishbear_bare" else [])
        data = "folder" if base == "fishbear_folder" else "memory"
        row, loader = fishbear_row(setup, extra, data, compiled, scratch, folder, sources=base == "fishbear")
        if loader is not None:
            pictures = sum(1 for _ in (folder / "train").rglob("*.jp*g"))
            row.note = f"{pictures} pictures, {setup.workers} workers; the loader alone {loader:.0f} images/s"
    row.name = name
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True, help="an ImageFolder tree of JPEGs (or its parent)")
    parser.add_argument("--replicate", type=int, default=25, help="links of each picture in the scratch tree")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--model", default=None, help="a model= config (default resnet50; cpu: convnet)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps timed, warm-up included")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--profile", type=int, default=None, help="steps profiled after the timed ones")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--rows", default=None, help="comma-separated row keys (default: " + ", ".join(DEFAULT_ROWS)
                        + "); all: " + ", ".join(ROWS))
    parser.add_argument("--explain", default="", help="comma-separated row keys whose busiest operations are written")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "experiments" / "gpu")
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)        # a child process: this row only
    parser.add_argument("--row-out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    cpu = args.device == "cpu"
    if not cpu and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: give --device cpu for the smoke run")
    device = torch.device(args.device)
    setup = Setup(device, args.model or ("convnet" if cpu else "resnet50"), args.batch_size or (8 if cpu else 128),
                  args.image_size or (32 if cpu else 224), args.steps or (8 if cpu else 60),
                  args.warmup or (3 if cpu else 15), args.profile or (2 if cpu else 10),
                  args.workers if args.workers is not None else (0 if cpu else 12),
                  "32-true" if cpu else "bf16-mixed", None if cpu else torch.bfloat16)
    torch.backends.cudnn.benchmark = not cpu
    if args.row is not None:  # a child: one row, written as JSON
        with tempfile.TemporaryDirectory() as scratch_dir:
            row = run_row(args.row, setup, args.folder, Path(scratch_dir))
        args.row_out.write_text(json.dumps(asdict(row)))
        return asdict(row)
    keys = args.rows.split(",") if args.rows else list(DEFAULT_ROWS)
    unknown = [k for k in keys if k not in ROWS]
    if unknown:
        raise SystemExit(f"--rows: unknown {', '.join(unknown)}; the rows are {', '.join(ROWS)}")
    if args.skip_compile:
        keys = [k for k in keys if not ROWS[k][1]]
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        folder = image_folder(args.images, args.replicate, scratch)
        per_epoch = int(sum(1 for _ in (folder / "train").rglob("*.jp*g")) * 0.95) // setup.batch
        if per_epoch <= setup.steps + setup.profile:
            print(f"note: the folder's epoch is {per_epoch} steps, under the {setup.steps + setup.profile} measured: "
                  "its end (checkpoints, epoch figures) falls inside; give a larger --replicate", flush=True)
        for key in keys:
            row = _child(key, argv if argv is not None else sys.argv[1:], folder, scratch)
            rows.append(row)
            print(f"{row.name:44s} {row.images_per_s:9.1f} images/s  syncs/step {_show(row.syncs_per_step)}  "
                  f"copies/step {_show(row.copies_per_step)}  compiled graphs {row.compiled_graphs}  "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
            if key in args.explain.split(",") and row.explained:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"explain_{key}.txt").write_text(row.explained)
            report(setup, rows, args.out, time.perf_counter() - started, quiet=True)  # kept if a later row is cut off
    return report(setup, rows, args.out, time.perf_counter() - started)


def _child(key: str, argv: list[str], folder: Path, scratch: Path) -> Row:
    """``key``'s row measured in a fresh process (a failure there is a row with its reason)."""
    import subprocess

    out = scratch / f"{key}.json"
    drop = ("--rows", "--out", "--explain")
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in drop:
            skip = True
            continue
        if arg.split("=", 1)[0] in drop + ("--explain",) or arg == "--skip-compile":
            continue
        kept.append(arg)
    command = [sys.executable, str(Path(__file__).resolve()), *kept, "--row", key, "--row-out", str(out),
               "--folder", str(folder)]
    ran = subprocess.run(command, capture_output=True, text=True)
    if ran.returncode != 0 or not out.is_file():
        tail = (ran.stderr or ran.stdout).strip().splitlines()[-3:]
        return Row(ROWS[key][0], note=f"failed: {' | '.join(tail)[:300]}")
    return Row(**json.loads(out.read_text()))


def _show(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def report(setup: Setup, rows: list[Row], out: Path, seconds: float, quiet: bool = False) -> dict[str, Any]:
    """The table on stdout, and as JSON and Markdown under ``out`` by the device's name."""
    import lightning
    import torchvision

    ceiling = {(", compiled" in r.name): r.images_per_s for r in rows if r.name.startswith("ceiling")}
    name = device_name(setup.device)
    lines = ["| row | images/s | of the ceiling | syncs / step | copies / step | compiled graphs | note |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        base = ceiling.get(", compiled" in r.name) or ceiling.get(False) or float("nan")
        lines.append(f"| {r.name} | {r.images_per_s:.0f} | {r.images_per_s / base:.2f} | {_show(r.syncs_per_step)} | "
                     f"{_show(r.copies_per_step)} | {'-' if r.compiled_graphs is None else r.compiled_graphs} | {r.note} |")
    versions = (f"torch {torch.__version__}, torchvision {torchvision.__version__}, Lightning {lightning.__version__}, "
                f"CUDA {torch.version.cuda}")
    kernels = "fused AdamW" if setup.device.type == "cuda" else "AdamW (torch's CPU kernels)"
    head = (f"{name}: model={setup.model} batch={setup.batch} {setup.size} px, {setup.precision}, channels_last, {kernels}"
            f"; {setup.steps - setup.warmup} steps timed after {setup.warmup}, syncs over {setup.profile} more; "
            f"{versions}; {time.strftime('%Y-%m-%d')}; {seconds:.0f} s in all")
    text = head + "\n\n" + "\n".join(lines) + "\n"
    sources = [r for r in rows if r.sync_sources]
    for r in sources:
        text += f"\nWhere {r.name} synchronised (CUDA's sync debug mode, per step):\n" + \
            "".join(f"- {s}\n" for s in r.sync_sources)
    if not quiet:
        print("\n" + text, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()
    data = {"device": name, "setup": {k: str(v) for k, v in asdict(setup).items()}, "versions": versions,
            "date": time.strftime("%Y-%m-%d"), "seconds": round(seconds, 1),
            "rows": [{k: v for k, v in asdict(r).items() if k != "explained"} for r in rows]}
    (out / f"{slug}.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / f"{slug}.md").write_text(text)
    return data


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
