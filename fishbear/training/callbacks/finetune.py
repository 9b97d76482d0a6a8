"""fastai's ``fine_tune`` and progressive resizing as Lightning callbacks, written once against
the layer groups and a plan of phases.

A phase is a span of epochs with the body frozen or not, an image size and a one-cycle of its
own. ``FineTune``'s plan is fastai's ``fine_tune``: ``freeze_epochs`` with the body frozen and a
cycle at ``trainer.lr`` that spends almost all of it warming up (``pct_start=0.99``), then
everything unfrozen with a fresh cycle at ``trainer.lr * unfrozen_lr_factor`` for the head,
spread down to ``/ trainer.lr_div`` for the first group. ``ProgressiveResize`` (fastai lesson 3,
Planet at 128 then 256) repeats that plan at each new image size: the data module switches size
(same split, new transforms), the body is frozen again for ``refreeze_epochs`` and the cycle
restarts at ``lr * lr_factor``.

Parameters never leave the optimiser (frozen ones get no gradient and are skipped), so no phase
needs a new optimiser. A resumed run picks its phase up again: it re-freezes what its epoch calls
for, reloads data at the phase's size and fast-forwards the phase's schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import lightning as L

from fishbear.core.errors import ConfigError
from fishbear.training.optim import OptimSettings, build_scheduler, group_rates


def freeze(network: Any, freeze_to: int | None, train_bn: bool) -> list[str]:
    """``freeze_to=None`` freezes the network's body (for a U-Net, the encoder but not the
    decoder); a number freezes that many groups from the input (negative: all but that many)."""
    return network.freeze(train_bn) if freeze_to is None else network.freeze_to(freeze_to, train_bn)


@dataclass(frozen=True)
class Phase:
    start: int               # first epoch
    end: int                 # one past the last epoch
    frozen: bool
    lr_scale: float = 1.0    # of trainer.lr
    size: Any = None         # image size for the phase; None keeps the data module's


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
        self.phase: Phase | None = None

    @property
    def active(self) -> bool:
        return self.enabled

    # -- the plan ------------------------------------------------------------------------------
    def fine_tune_phases(self, start: int, end: int, frozen_epochs: int, lr_scale: float = 1.0,
                         size: Any = None) -> list[Phase]:
        """Frozen for ``frozen_epochs`` (if any), then unfrozen, within ``[start, end)``."""
        cut = min(end, start + max(0, frozen_epochs))
        phases = [Phase(start, cut, True, lr_scale, size)] if cut > start else []
        if end > cut:
            phases.append(Phase(cut, end, False, lr_scale * self.unfrozen_lr_factor, size))
        return phases

    def plan(self, max_epochs: int) -> list[Phase]:
        return self.fine_tune_phases(0, max_epochs, self.freeze_epochs) if self.enabled else []

    def phase_at(self, epoch: int, max_epochs: int) -> Phase | None:
        return next((p for p in self.plan(max_epochs) if p.start <= epoch < p.end), None)

    def phase_settings(self, base: OptimSettings, phase: Phase) -> OptimSettings:
        lr = base.lr * phase.lr_scale
        if phase.frozen:
            return replace(base, lr=lr, lr_div=1.0, pct_start=self.frozen_pct_start, schedule="one_cycle")
        return replace(base, lr=lr, pct_start=self.unfrozen_pct_start, div_factor=self.unfrozen_div_factor,
                       schedule="one_cycle")

    # -- hooks ---------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.active:
            return
        phase = self.phase_at(trainer.current_epoch, trainer.max_epochs)
        if phase is None:
            return
        network = pl_module.network
        if phase.frozen:
            freeze(network, self.freeze_to, self.train_bn)
        else:
            network.unfreeze()
        if phase != self.phase:  # a phase starts, or a resumed run picks its phase up again
            self._install_schedule(trainer, pl_module, phase)
            self.phase = phase

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.active:
            pl_module.network.hold_frozen_bn()  # validation's model.train() switches them back

    def _install_schedule(self, trainer: L.Trainer, pl_module: L.LightningModule, phase: Phase) -> None:
        settings = self.phase_settings(pl_module.optim, phase)
        per_epoch = max(1, trainer.num_training_batches // max(1, trainer.accumulate_grad_batches))
        optimizer = trainer.optimizers[0]
        rates = group_rates(settings.lr, settings.lr_div, len(optimizer.param_groups), settings.lr_spread,
                            len(pl_module.network.body_groups()))
        for group, rate in zip(optimizer.param_groups, rates):
            group["lr"] = rate
        scheduler = build_scheduler(optimizer, settings, (phase.end - phase.start) * per_epoch)
        for _ in range(max(0, trainer.global_step - phase.start * per_epoch)):
            scheduler.step()
        trainer.lr_scheduler_configs[0].scheduler = scheduler


class ProgressiveResize(FineTune):
    """Train at growing image sizes: ``schedule`` lists ``[epoch, size]`` pairs, the epoch a size
    starts at and the size (``[[0, 128], [5, 256]]``; a size is one side or ``[height, width]``;
    a mapping ``{0: 128, 5: 256}`` works too from Python). The first size follows
    fine_tune (frozen first when ``enabled``, i.e. for pretrained models); each later size freezes
    the body again for ``refreeze_epochs`` (0: stays unfrozen) and restarts the one-cycle at
    ``trainer.lr * lr_factor``. Works for every task kind: only the data module's size changes."""

    def __init__(self, schedule: list[Any] | dict[int, Any], refreeze_epochs: int = 1, lr_factor: float = 0.5,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            pairs = schedule.items() if hasattr(schedule, "items") else schedule
            self.schedule = {int(epoch): size for epoch, size in pairs}
        except (TypeError, ValueError):
            raise ConfigError(f"callbacks.finetune.schedule={schedule!r} must list [epoch, size] pairs, "
                              "e.g. [[0,128],[5,256]]") from None
        if 0 not in self.schedule:
            raise ConfigError(f"callbacks.finetune.schedule={schedule!r} must give the size of epoch 0.")
        self.refreeze_epochs = int(refreeze_epochs)
        self.lr_factor = float(lr_factor)
        self.size: Any = None
        self._next_size: Any = None  # what a run resumed from a checkpoint of this epoch starts with

    @property
    def active(self) -> bool:
        return True  # resizing happens with or without freezing

    def plan(self, max_epochs: int) -> list[Phase]:
        starts = sorted(e for e in self.schedule if e < max_epochs)
        phases: list[Phase] = []
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else max_epochs
            frozen = (self.freeze_epochs if self.enabled else 0) if i == 0 else self.refreeze_epochs
            phases += self.fine_tune_phases(start, end, frozen, self.lr_factor ** i, self.schedule[start])
        return phases

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Lightning builds the first training loader while configuring the optimiser (to count
        its steps), after this hook and after a checkpoint's callback state is restored, but before
        ``on_fit_start``: so the size is set here, and again when a checkpoint is loaded."""
        if stage == "fit":
            self._use_size(trainer, self.schedule[0])

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        size = checkpoint.get("callbacks", {}).get(self.state_key, {}).get("next_size")
        if size is not None:
            self._use_size(trainer, size)

    def _use_size(self, trainer: L.Trainer, size: Any) -> None:
        self.size = self._next_size = size
        trainer.datamodule.set_image_size(size)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        upcoming = self.phase_at(trainer.current_epoch + 1, trainer.max_epochs)
        self._next_size = upcoming.size if upcoming is not None else self.size

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Switch size before the next epoch's loaders are built (Lightning builds them before
        ``on_train_epoch_start``): ask for one reload, then stop reloading."""
        upcoming = self.phase_at(trainer.current_epoch + 1, trainer.max_epochs)
        trainer.reload_dataloaders_every_n_epochs = 0
        if upcoming is not None and upcoming.size != self.size:
            self._use_size(trainer, upcoming.size)
            trainer.reload_dataloaders_every_n_epochs = 1

    def state_dict(self) -> dict[str, Any]:
        """Checkpoints are written at the end of an epoch: a run resumed from one starts the next."""
        return {"next_size": self._next_size}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._next_size = state_dict.get("next_size")
