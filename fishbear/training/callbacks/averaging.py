"""Two recipes that average weights, for any run that wants them (off by default: each is measured
in ``experiments/recipes/`` before a kind turns it on).

- :func:`ema`: an exponential moving average of the weights, validated, checkpointed and tested in
  place of the last weights (Lightning's ``WeightAveraging``, with timm's ``ModelEmaV3`` warm-up:
  the decay at the n-th update is ``min(decay, (1 + n) / (10 + n))``, so a run of a few hundred
  steps averages its late weights, not its first ones). The update stays on the device: no host sync.
- :class:`WiseFT`: weight-space ensembling of the fine-tuned body with the pretrained one
  (Wortsman et al. 2022): after training, the best checkpoint's body becomes
  ``alpha * fine-tuned + (1 - alpha) * pretrained`` (its new head is kept: it has no pretrained
  counterpart), which keeps more of what the pretrained network knew about pictures unlike the
  training set's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, WeightAveraging

from fishbear.core.errors import ConfigError


class EMA(WeightAveraging):
    """The average of the weights, updated after every optimiser step (see the module)."""

    def __init__(self, decay: float = 0.998, warmup: bool = True) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"callbacks.ema.decay={decay}: give a number between 0 and 1 (0.998 is timm's default range)")

        def average(averaged: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
            rate = torch.clamp((1.0 + updates) / (10.0 + updates), max=decay) if warmup else torch.tensor(decay)
            rate = rate.to(device=averaged.device, dtype=averaged.dtype) if averaged.is_floating_point() else rate
            return averaged * rate + current * (1.0 - rate) if averaged.is_floating_point() else current

        super().__init__(avg_fn=average, use_buffers=True)
        self.decay, self.warmup, self.average = decay, warmup, average


    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Testing or predicting a checkpoint: its ``state_dict`` is the average, already loaded
        (Lightning's callback would put the last weights back, and the run's test would score
        those). Resuming a fit restores both, as Lightning does."""
        from lightning.pytorch.trainer.states import TrainerFn

        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def ema(decay: float | None = None, warmup: bool = True) -> EMA | None:
    """``callbacks.ema.decay=0.998`` switches the average on; ``null`` (the default) leaves it off."""
    return None if decay is None else EMA(float(decay), bool(warmup))


class WiseFT(Callback):
    """``alpha``: the fine-tuned body's share (1: the fine-tuned network, 0: the pretrained body
    with the new head); ``None``: off. Needs pretrained weights to mix with."""

    def __init__(self, alpha: float | None = None) -> None:
        if alpha is not None and not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"callbacks.wise_ft.alpha={alpha}: give a share between 0 and 1 (0.5 is the paper's)")
        self.alpha = None if alpha is None else float(alpha)
        self._pretrained: dict[str, torch.Tensor] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.alpha is None or self._pretrained:
            return
        network = pl_module.network
        if not getattr(network.pretrained_cfg, "weights", None):
            raise ConfigError("callbacks.wise_ft.alpha mixes the fine-tuned body with its pretrained weights: "
                              "this run has none (add model.pretrained=true, or drop callbacks.wise_ft.alpha).")
        self._pretrained = {f"network.{name}": value.detach().to("cpu", copy=True) for name, value in body_state(network).items()}

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.alpha is None or not trainer.is_global_zero:
            return
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if best:
            mix_checkpoint(Path(best), self._pretrained, self.alpha)


def body_state(network: Any) -> dict[str, torch.Tensor]:
    """The pretrained part of a network's state, by name: the parameters of its body groups and the
    buffers (batch-norm statistics) of the modules that own them."""
    names = {id(m): n for n, m in network.named_modules()}
    params = {id(p): n for n, p in network.named_parameters()}
    groups = network.group_parameters()
    state: dict[str, torch.Tensor] = {}
    for group in network.body_groups():
        for module, param in groups[group]:
            state[params[id(param)]] = param
            prefix = names[id(module)]
            for buffer_name, buffer in module.named_buffers(recurse=False):
                state[f"{prefix}.{buffer_name}" if prefix else buffer_name] = buffer
    return state


def mix_checkpoint(path: Path, pretrained: dict[str, torch.Tensor], alpha: float) -> None:
    """Rewrite the checkpoint at ``path`` (atomically) with its body mixed toward ``pretrained``;
    integer buffers (batch counts) are kept."""
    from fishbear.training.callbacks.checkpoint_io import AtomicCheckpointIO

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    state = checkpoint["state_dict"]
    for name, before in pretrained.items():
        if name in state and state[name].is_floating_point():
            state[name] = alpha * state[name] + (1.0 - alpha) * before.to(state[name].dtype)
    checkpoint.setdefault("fishbear_recipes", {})["wise_ft_alpha"] = alpha
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)
