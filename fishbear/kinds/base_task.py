"""The LightningModule every kind's task derives from: stepping, logging, metrics per stage,
optimisers, test records, the meta its checkpoints carry (:class:`~fishbear.kinds.meta.ModelMeta`).

A kind's task (``fishbear/kinds/<kind>/task.py``) fixes only what differs: the loss, the metrics,
and the pictures; how outputs become predictions is the kind's own (``Kind.predictions``), shared
with inference. Metrics are declared once and cloned per stage, so no stage has its own copy of
the metric code.

**No host-device sync in a step** (:mod:`fishbear.training.sync_free`): losses are summed on the
device, metric inputs handed to torchmetrics in rare large updates, the logged training loss read
when it has arrived, and everything given to ``self.log`` is a Python number. Epoch figures are
read once, at the epoch's end.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from torchmetrics import MetricCollection

from fishbear.core.errors import ConfigError
from fishbear.kinds.base import Kind
from fishbear.kinds.meta import KindSettings, ModelMeta
from fishbear.kinds.records import merge_records
from fishbear.models.base import Network
from fishbear.reports.plots import image_grid
from fishbear.training.mixing import Mixing
from fishbear.training.optim import OptimSettings, build_optimizer, build_scheduler
from fishbear.training.sync_free import AsyncScalar, BatchedUpdates, RunningLoss

STAGES = ("train", "val", "test")


class BaseTask(L.LightningModule):
    kind: ClassVar[Kind]

    def __init__(
        self,
        network: Network,
        classes: list[str],
        optim: OptimSettings | None = None,
        channels_last: bool = False,
        compile_network: bool = False,
        meta: ModelMeta | None = None,
        monitor: str = "val/loss",
        monitor_mode: str = "min",
        mixup: float = 0.0,
        cutmix: float = 0.0,
    ) -> None:
        """``monitor`` picks the best checkpoint and ranks sweep runs; ``monitor_mode`` says
        whether higher (``max``) or lower (``min``) is better. ``meta``: what the checkpoints
        will carry (the engine builds it from the data and the network); its kind settings are
        the starting point of :attr:`settings`, which a kind's task completes from its own
        arguments."""
        super().__init__()
        self.monitor, self.monitor_mode = monitor, monitor_mode
        self.mixing = Mixing(float(mixup), float(cutmix))  # training batches mixed (classes, tags)
        if self.mixing.on and not self.kind.mixes:
            raise ConfigError(f"task.mixup / task.cutmix mix the targets of classes or tags; a '{self.kind.name}' "
                              f"model's are not a share to mix. Leave them at 0.")
        self.network = network
        self.classes = list(classes)
        self.optim = optim or OptimSettings()
        self.channels_last = bool(channels_last)
        self.compile_network = bool(compile_network)
        self.meta: ModelMeta = meta if meta is not None else ModelMeta(
            kind=self.kind.name, classes=tuple(self.classes), image_size=0, mean=(), std=(), model_cfg={},
            settings=self.kind.settings_type())
        # the kind's settings this task trains and evaluates with (typed; kinds' tasks replace fields)
        self.settings: KindSettings = self.meta.settings
        metrics = self.make_metrics()
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", metrics.clone(prefix=f"{stage}/"))
        self.test_results: dict[str, Any] = {}
        self._test_records: list[dict[str, torch.Tensor]] = []
        self._losses = {stage: RunningLoss() for stage in STAGES}
        self._updates = {stage: BatchedUpdates() for stage in STAGES}
        self._logged_losses: list[tuple[int, AsyncScalar]] = []  # training-loss windows on their way to the host
        self._shown_loss: float | None = None

    # -- what a kind defines -------------------------------------------------------------------
    def make_metrics(self) -> MetricCollection:
        raise NotImplementedError

    def compute_loss(self, outputs: torch.Tensor, batch: dict[str, Any], reduction: str = "mean") -> torch.Tensor:
        raise NotImplementedError

    def metric_inputs(self, outputs: torch.Tensor, batch: dict[str, Any]) -> tuple[Any, ...]:
        """What the metric collection is updated with: ``(predictions, targets[, ...])``."""
        raise NotImplementedError

    def draw(self, images: np.ndarray, targets: torch.Tensor, predictions: torch.Tensor | None = None,
             sizes: torch.Tensor | None = None) -> Any:
        """A figure of ``images`` (N x H x W x 3 in [0, 1]) with their targets and, when given,
        the predictions: the training batch, validation samples and the report all use it."""
        titles = [self._caption(t, None if predictions is None else p)
                  for t, p in zip(targets, predictions if predictions is not None else [None] * len(targets))]
        return image_grid(images, titles)

    def _caption(self, target: torch.Tensor, prediction: torch.Tensor | None) -> str:
        return str(target)

    def sample_losses(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """One loss per image (for the report's top losses)."""
        losses = self.compute_loss(outputs, batch, reduction="none")
        return losses.flatten(1).mean(1) if losses.ndim > 1 else losses

    # what a kind does after fitting, on the best weights (the engine loads them first and, when
    # this returns True, writes the task back into the best checkpoint): multi-label tunes thresholds
    tunes_after_fit: ClassVar[bool] = False

    def after_fit(self, trainer: L.Trainer, datamodule: Any) -> bool:
        """Work between fitting and testing; True when the best checkpoint must carry its result."""
        return False

    # -- shared machinery ----------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)

    def on_fit_start(self) -> None:
        import time

        self._fit_started = time.perf_counter()
        seed = os.environ.get("PL_GLOBAL_SEED")  # what train()'s seed_everything set
        self._run_seed = int(seed) if seed is not None else None

    def configure_model(self) -> None:
        """NHWC weights before the strategy wraps the network: DDP lays its gradient buckets out
        from the parameters' strides when it wraps, and converting afterwards (as on_fit_start
        did) left every step copying gradients between mismatched layouts ("Grad strides do not
        match bucket view strides")."""
        if self.channels_last:
            self.network.to(memory_format=torch.channels_last)
        if self.compile_network and not getattr(self, "_compiled", False):
            # in place (nn.Module.compile): parameter names, and so checkpoints, stay those of the
            # plain network; compiling happens on the first step (its time is in the run's fit time)
            self.network.compile()
            self._compiled = True

    @property
    def fit_seconds_before(self) -> float:
        """Seconds of fitting in earlier processes of this run (a resumed run reports the sum)."""
        return float(getattr(self, "_fit_seconds_before", 0.0))

    @property
    def wall_seconds_before(self) -> float:
        """Wall-clock seconds of earlier processes of this run, up to their last checkpoint."""
        return float(getattr(self, "_wall_seconds_before", 0.0))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        loaded = ModelMeta.read_from(checkpoint, "the checkpoint being restored", {self.kind.name: self.kind})
        self._fit_seconds_before = loaded.provenance.fit_seconds
        self._wall_seconds_before = loaded.provenance.wall_seconds
        self.restore_settings(loaded.settings)

    def restore_settings(self, loaded: KindSettings) -> None:
        """Settings a kind settled after fitting, read back with the weights they belong to (the
        tuned thresholds when the best checkpoint is tested); the task's own arguments stay."""

    def _images(self, batch: dict[str, Any]) -> torch.Tensor:
        """The batch's pictures (normalised on the device already) in the network's memory format;
        with a compiled network, an evaluation batch's size is marked dynamic, so the last, short
        batch of a validation does not compile the network again."""
        images = batch["image"]
        if not isinstance(images, torch.Tensor):
            return images  # a detector's list of pictures
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.compile_network and not self.training and images.ndim == 4:
            import torch._dynamo as dynamo

            dynamo.mark_dynamic(images, 0)
        return images

    def _step(self, batch: dict[str, Any], stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, scored = self._images(batch), batch
        if stage == "train" and self.mixing.on:  # the loss sees the mixed targets; the metrics the pictures' own
            images, mixed = self.mixing(images, self.kind.soft_target(batch["target"], len(self.classes)))
            scored = {**batch, "target": mixed}
        outputs = self(images)
        loss = self.compute_loss(outputs, scored)
        self._updates[stage].add(getattr(self, f"{stage}_metrics"), self.metric_inputs(outputs, batch))
        self._losses[stage].add(loss, len(batch["image"]))
        if stage == "train" and self._train_loss_due():
            self._log_training_loss()
        return loss, outputs

    def _train_loss_due(self) -> bool:
        """Whether Lightning writes step logs after this batch (every ``trainer.log_every_n_steps``):
        only then is a window of the training loss sent on its way to the host (``self.log``'s
        bookkeeping costs ~1 ms a call on CPU); in between it is summed on the device."""
        connector = getattr(self.trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True))

    def _log_training_loss(self, wait: bool = False) -> None:
        """Queue this window's mean loss for the host and publish the windows that have arrived
        (``wait``: all of them, at the epoch's end), each to the loggers at the step it ends at,
        and the latest to the progress bar (``_shown_loss``, which
        :class:`fishbear.training.callbacks.progress.ProgressBar` shows): never through
        ``self.log``, which would keep it on the device and read it back after every step."""
        if self._losses["train"].has_window():
            self._logged_losses.append((self.global_step, AsyncScalar(self._losses["train"].take_window())))
        while self._logged_losses and (wait or self._logged_losses[0][1].ready()):
            step, scalar = self._logged_losses.pop(0)
            self._shown_loss = scalar.value()
            if self.trainer.is_global_zero:
                for logger in self.loggers:
                    logger.log_metrics({"train/loss_step": self._shown_loss}, step=step)

    def _log_epoch_metrics(self, stage: str) -> None:
        """Metrics are updated every step but computed and logged once per epoch (handing the
        collection to ``self.log`` every step cost Lightning ~5 ms a step of bookkeeping, and the
        epoch value is the same), read back here, once, as Python numbers."""
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        self._updates[stage].flush(metrics)
        if any(m.update_called for m in metrics.values()):
            self.log_dict({name: float(value) for name, value in metrics.compute().items()}, prog_bar=stage != "train")
        metrics.reset()

    def _log_epoch_loss(self, stage: str) -> None:
        """The stage's loss over the epoch, weighted by batch size, read back once; under DDP the
        validation loss (the checkpoint's and the search's monitor) is averaged over the processes."""
        mean = self._losses[stage].take_epoch()
        if mean is not None:
            self.log(f"{stage}/loss", float(mean), prog_bar=True, sync_dist=True)

    def on_train_epoch_start(self) -> None:
        """Each epoch's random numbers (shuffle order, augmentation, dropout) come from the run's
        seed and the epoch's number alone, so a run killed during epoch k and resumed from the end
        of epoch k-1 repeats epoch k as the uninterrupted run did (in the main process: with loader
        workers, their own streams carry on across epochs)."""
        if getattr(self, "_run_seed", None) is None:
            return
        import random

        seed = (self._run_seed * 1_000_003 + self.current_epoch) % 2**32
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def on_train_epoch_end(self) -> None:
        self._log_training_loss(wait=True)
        epoch_loss = self._losses["train"].take_epoch()
        if epoch_loss is not None:  # the training loss of each process (no sync every step under DDP)
            self.log("train/loss_epoch", float(epoch_loss), prog_bar=True)
        self._log_epoch_metrics("train")

    def on_validation_epoch_start(self) -> None:
        self._losses["val"].take_epoch()  # a validation stopped early (sanity check) leaves nothing behind

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_loss("val")
        self._log_epoch_metrics("val")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        _, outputs = self._step(batch, "test")
        self._test_records.append({
            "index": batch["index"].detach().cpu(),
            "loss": self.sample_losses(outputs, batch).detach().float().cpu(),
            "prediction": self.kind.kept_predictions(outputs).detach().cpu(),
            "target": batch["target"].detach().cpu(),
            "size": batch["size"].detach().cpu(),
        })

    def on_test_epoch_start(self) -> None:
        self._test_records = []
        self._losses["test"].take_epoch()

    def on_test_epoch_end(self) -> None:
        """Log the test metrics; keep per-image results (ordered by dataset index) for the report."""
        self._log_epoch_loss("test")
        self._log_epoch_metrics("test")
        self.test_results = self.merge_test_records(self._test_records)
        self._test_records = []

    def merge_test_records(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Every process's per-image records (under DDP, all ranks' gathered) as one table
        (:func:`~fishbear.kinds.records.merge_records`)."""
        if self.trainer.world_size > 1:
            import torch.distributed as dist

            gathered: list[Any] = [None] * self.trainer.world_size
            dist.all_gather_object(gathered, records)
            records = [record for part in gathered for record in part]
        return merge_records(records)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self.kind.predictions(self(self._images(batch)))

    def on_train_start(self) -> None:
        """A resumed run asked for more (or fewer) epochs than it started with: the schedule
        restored from the checkpoint spans the old length (a one-cycle runs out of steps and
        fails), so it is rebuilt for the new length and fast-forwarded to the step the run is at.
        (Fine-tuning's phases install their own schedules the same way.)"""
        configs = self.trainer.lr_scheduler_configs
        if not configs or self.trainer.global_step == 0:
            return
        restored = configs[0].scheduler
        wanted = max(int(self.trainer.estimated_stepping_batches), 4)
        length = getattr(restored, "total_steps", None) or getattr(restored, "T_max", None)
        if length is None or length == wanted:
            return
        optimizer = self.trainer.optimizers[0]
        for group in optimizer.param_groups:  # the peak rates the run was built with, not the current ones
            group["lr"] = group.get("max_lr", group.get("initial_lr", group["lr"]))
        rebuilt = build_scheduler(optimizer, self.optim, wanted)
        for _ in range(self.trainer.global_step):
            rebuilt.step()
        configs[0].scheduler = rebuilt

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.network, self.optim)
        scheduler = build_scheduler(optimizer, self.optim, self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def checkpoint_meta(self) -> ModelMeta:
        """The meta of this task's weights now: its classes and settings, the size its data
        module feeds (progressive resizing changes it), and the seconds spent so far."""
        import dataclasses
        import time

        provenance = self.meta.provenance
        started = getattr(self, "_fit_started", None)
        if started is not None:
            provenance = dataclasses.replace(provenance, fit_seconds=self.fit_seconds_before + time.perf_counter() - started)
        process_started = getattr(self, "process_started", None)  # set by train(): setup counts too
        if process_started is not None:
            provenance = dataclasses.replace(
                provenance, wall_seconds=self.wall_seconds_before + time.perf_counter() - process_started)
        meta = self.meta.replace(classes=tuple(self.classes), settings=self.settings, provenance=provenance)
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and hasattr(datamodule, "image_size"):
            size = datamodule.image_size
            meta = meta.replace(image_size=size if isinstance(size, int) else tuple(size))
        return meta

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Everything inference needs travels with the weights (classes, kind, stats, model config)."""
        self.checkpoint_meta().write_into(checkpoint)
