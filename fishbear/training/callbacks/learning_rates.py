"""The learning rate of every parameter group in the loggers, without a host-device sync.

Lightning's ``LearningRateMonitor`` also writes each rate into ``trainer.callback_metrics`` as a
tensor made on the model's device: on a GPU one blocking copy per parameter group at every logged
step (0.6 syncs a step for a ResNet-50's six groups logged every 10 steps, measured on an H200 with
benchmarks/gpu.py). The rates are Python numbers in the optimiser; this hands them to the loggers
as they are, under the names Lightning uses (``lr-AdamW/stage3``).
"""

from __future__ import annotations

from typing import Any

import lightning as L


class LearningRates(L.Callback):
    """Every ``trainer.log_every_n_steps`` steps, each parameter group's rate (and, with
    ``log_momentum``, its momentum: SGD's, or Adam's beta1) to every logger."""

    def __init__(self, log_momentum: bool = False) -> None:
        self.log_momentum = bool(log_momentum)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if not trainer.loggers or not trainer._logger_connector.should_update_logs:
            return
        values = self.rates(trainer)
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.fit_loop.epoch_loop._batches_that_stepped)

    def rates(self, trainer: L.Trainer) -> dict[str, float]:
        values: dict[str, float] = {}
        for number, optimizer in enumerate(trainer.optimizers):
            prefix = f"lr-{type(optimizer).__name__}" + (f"-{number}" if len(trainer.optimizers) > 1 else "")
            for index, group in enumerate(optimizer.param_groups):
                name = f"{prefix}/{group.get('name', f'pg{index + 1}')}"
                values[name] = float(group["lr"])
                if self.log_momentum:
                    momentum = group["betas"][0] if "betas" in group else group.get("momentum", 0.0)
                    values[f"{name}-momentum"] = float(momentum)
        return values
