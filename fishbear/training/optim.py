"""Parameter groups with discriminative learning rates, the optimiser and the schedule.

One parameter group per layer group, named after it, so TensorBoard's learning-rate curves read
``lr-AdamW/stage3``. ``lr`` is the peak rate of the head; earlier groups get smaller rates down
to ``lr / lr_div`` for the first group (fastai's ``slice(lr / lr_div, lr)``): spread
geometrically over the groups (``lr_spread: geometric``), or the whole body at ``lr / lr_div``
(``lr_spread: body_head``), which is what fastai's slice gives on its two-group split of a
torchvision network, and what fine-tuning a small dataset wanted here (experiments/bears).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from fishbear.core.errors import ConfigError
from fishbear.models.base import Network

OPTIMIZERS = ("adamw", "adam", "sgd")
SPREADS = ("geometric", "body_head")
SCHEDULES = ("one_cycle", "cosine", "constant")


@dataclass(frozen=True)
class OptimSettings:
    """fishbear's own ``trainer.*`` keys; Lightning's Trainer gets all the others.

    ``momentum`` is SGD's momentum or Adam's beta1; with ``one_cycle`` it cycles from
    ``momentum`` down to ``momentum - 0.1`` and back while the rate goes up and down.
    """

    lr: float = 3e-3
    lr_div: float = 1.0
    lr_spread: str = "geometric"
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    momentum: float = 0.95
    beta2: float = 0.99
    schedule: str = "one_cycle"
    pct_start: float = 0.25
    div_factor: float = 25.0
    final_div_factor: float = 1e5

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"trainer.optimizer={self.optimizer!r} is not known; use one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"trainer.schedule={self.schedule!r} is not known; use one of {', '.join(SCHEDULES)}")
        if not self.lr > 0:
            raise ConfigError(f"trainer.lr must be positive, got {self.lr}")
        if self.lr_spread not in SPREADS:
            raise ConfigError(f"trainer.lr_spread={self.lr_spread!r} is not known; use one of {', '.join(SPREADS)}")
        if not self.lr_div >= 1:
            raise ConfigError(f"trainer.lr_div must be at least 1 (1 = one rate for all groups), got {self.lr_div}")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def group_rates(lr: float, lr_div: float, n_groups: int, spread: str = "geometric",
                n_body: int | None = None) -> list[float]:
    """From ``lr / lr_div`` (first group) to ``lr`` (head): geometric steps, or ``body_head``:
    the ``n_body`` body groups (default: all but the last) at ``lr / lr_div``, new layers at ``lr``."""
    if n_groups == 1:
        return [lr]
    low = lr / lr_div
    if spread == "body_head":
        n_body = n_groups - 1 if n_body is None else n_body
        return [low] * n_body + [lr] * (n_groups - n_body)
    return [low * (lr / low) ** (i / (n_groups - 1)) for i in range(n_groups)]


def param_groups(network: Network, settings: OptimSettings) -> list[dict]:
    """Every parameter in exactly one named group; frozen ones stay in, so unfreezing needs no
    new optimiser (parameters without gradients are skipped by the step)."""
    groups = network.group_parameters()
    rates = group_rates(settings.lr, settings.lr_div, len(groups), settings.lr_spread, len(network.body_groups()))
    out, seen = [], set()
    for (name, members), rate in zip(groups.items(), rates):
        params = list({id(p): p for _, p in members if id(p) not in seen}.values())  # a tied weight once
        seen.update(id(p) for p in params)
        if params:
            out.append({"params": params, "lr": rate, "name": name})
    stray = [n for n, p in network.named_parameters() if id(p) not in seen]
    if stray:
        raise RuntimeError(f"parameters outside every layer group: {stray[:5]}; fix the model's layer_groups()")
    return out


def build_optimizer(network: Network, settings: OptimSettings) -> Optimizer:
    groups = param_groups(network, settings)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum,
                               weight_decay=settings.weight_decay, nesterov=False)
    betas = (settings.momentum, settings.beta2)
    cls = torch.optim.AdamW if settings.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=settings.lr, betas=betas, weight_decay=settings.weight_decay, **_kernels(groups))


def _kernels(groups: list[dict]) -> dict[str, bool]:
    """``fused=True`` where every parameter is on a CUDA device: one kernel for all tensors, and
    the step counts stay on the device (the per-tensor and foreach paths read each step count back
    as a Python number); elsewhere torch's own default (foreach where supported)."""
    params = [p for group in groups for p in group["params"]]
    if params and all(p.is_cuda and p.dtype in (torch.float32, torch.float16, torch.bfloat16) for p in params):
        return {"fused": True}
    return {}


def build_scheduler(optimizer: Optimizer, settings: OptimSettings, total_steps: int) -> LRScheduler:
    """A per-step schedule over ``total_steps``; ``one_cycle`` warms up for ``pct_start`` of them."""
    # OneCycleLR divides by the length of each phase: very short runs (a 4-step smoke test)
    # need at least two warm-up steps, one annealing step and a schedule of at least four; within
    # that, pct_start is kept as asked (fastai's frozen phase warms up for 99% of it)
    total_steps = max(int(total_steps), 4)
    if settings.schedule == "one_cycle":
        return OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=total_steps,
            pct_start=min(max(settings.pct_start, 2.0 / total_steps), 1.0 - 1.0 / total_steps),
            div_factor=settings.div_factor,
            final_div_factor=settings.final_div_factor,
            cycle_momentum=True,
            base_momentum=settings.momentum - 0.1,
            max_momentum=settings.momentum,
            anneal_strategy="cos",
        )
    if settings.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return LambdaLR(optimizer, lambda step: 1.0)
