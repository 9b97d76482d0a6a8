"""fastai's ``fine_tune`` as a Lightning callback, written once against the layer groups.

Phase 1 (``freeze_epochs``): the body is frozen up to ``freeze_to`` and the head trains with a
one-cycle schedule at ``trainer.lr`` that spends almost all of it warming up (fastai's
``pct_start=0.99``). Phase 2: every group is unfrozen and a fresh one-cycle starts at
``trainer.lr * unfrozen_lr_factor`` for the head, spread geometrically down to
``/ trainer.lr_div`` for the first group. Parameters never leave the optimiser (frozen ones get
no gradient and are skipped), so unfreezing needs no new optimiser. A resumed run re-freezes
what its epoch calls for and fast-forwards the phase's schedule to the step it stopped at.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import lightning as L

from fishbear.optim import OptimSettings, build_scheduler, group_rates


def freeze(network: Any, freeze_to: int | None, train_bn: bool) -> list[str]:
    """``freeze_to=None`` freezes the network's body (for a U-Net, the encoder but not the
    decoder); a number freezes that many groups from the input (negative: all but that many)."""
    return network.freeze(train_bn) if freeze_to is None else network.freeze_to(freeze_to, train_bn)


class FineTune(L.Callback):
    """``enabled=false`` makes every hook a no-op: the default callbacks carry a FineTune that is
    enabled by ``model.pretrained``, so pretrained runs fine-tune unless told otherwise."""

    def __init__(self, enabled: bool = True, freeze_epochs: int = 1, freeze_to: int | None = None, train_bn: bool = True,
                 unfrozen_lr_factor: float = 0.5, frozen_pct_start: float = 0.99,
                 unfrozen_pct_start: float = 0.3, unfrozen_div_factor: float = 5.0) -> None:
        self.enabled = bool(enabled)
        self.freeze_epochs = int(freeze_epochs)
        self.freeze_to = None if freeze_to is None else int(freeze_to)
        self.train_bn = bool(train_bn)
        self.unfrozen_lr_factor = float(unfrozen_lr_factor)
        self.frozen_pct_start = float(frozen_pct_start)
        self.unfrozen_pct_start = float(unfrozen_pct_start)
        self.unfrozen_div_factor = float(unfrozen_div_factor)
        self.phase: str | None = None

    def phase_of(self, epoch: int) -> str:
        return "frozen" if epoch < self.freeze_epochs else "unfrozen"

    def phase_settings(self, base: OptimSettings, phase: str) -> OptimSettings:
        if phase == "frozen":
            return replace(base, lr_div=1.0, pct_start=self.frozen_pct_start, schedule="one_cycle")
        return replace(base, lr=base.lr * self.unfrozen_lr_factor, pct_start=self.unfrozen_pct_start,
                       div_factor=self.unfrozen_div_factor, schedule="one_cycle")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled:
            return
        phase = self.phase_of(trainer.current_epoch)
        network = pl_module.network
        if phase == "frozen":
            freeze(network, self.freeze_to, self.train_bn)
        else:
            network.unfreeze()
        if phase != self.phase:  # a phase starts, or a resumed run picks its phase up again
            self._install_schedule(trainer, pl_module, phase)
            self.phase = phase

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.enabled:
            pl_module.network.hold_frozen_bn()  # validation's model.train() switches them back

    def _install_schedule(self, trainer: L.Trainer, pl_module: L.LightningModule, phase: str) -> None:
        settings = self.phase_settings(pl_module.optim, phase)
        per_epoch = max(1, trainer.num_training_batches // max(1, trainer.accumulate_grad_batches))
        first, last = (0, self.freeze_epochs) if phase == "frozen" else (self.freeze_epochs, trainer.max_epochs)
        optimizer = trainer.optimizers[0]
        rates = group_rates(settings.lr, settings.lr_div, len(optimizer.param_groups), settings.lr_spread,
                            len(pl_module.network.body_groups()))
        for group, rate in zip(optimizer.param_groups, rates):
            group["lr"] = rate
        scheduler = build_scheduler(optimizer, settings, (last - first) * per_epoch)
        for _ in range(max(0, trainer.global_step - first * per_epoch)):
            scheduler.step()
        trainer.lr_scheduler_configs[0].scheduler = scheduler
