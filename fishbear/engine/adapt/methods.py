"""The ways a trained network is fitted to new footage without its labels, each one measured
alone and together in ``experiments/adapt/``:

- ``colour``: the new footage's colour statistics mapped to the training footage's (per channel,
  mean and spread), folded into the checkpoint's normalisation: ``(a*x + b - mean) / std`` is
  ``(x - mean') / std'``, so every consumer of the checkpoint (predict, frames, evaluate, serve,
  the exported ONNX graph and its standalone predictor) applies it, with no new step to keep in
  step;
- ``bn``: batch-norm statistics estimated again on the new footage, all of it, shuffled (AdaBN;
  Schneider et al. 2020), optionally mixed with the training statistics (``bn_source_weight``);
- ``tent``: the batch-norm layers' scales and shifts trained to make the predictions on the new
  footage confident (entropy minimisation, TENT; Wang et al. 2021), then their statistics
  estimated again as ``bn`` does, so the saved network answers in eval mode;
- ``pseudo``: the last layer fitted again to the network's confident answers on the footage beside
  the training pictures' labels, the doubtful pictures put to a person
  (:mod:`~fishbear.engine.adapt.pseudo`).

They apply in that order whatever order they are given in: the colour first (the statistics are
those of the mapped pictures), the statistics before the entropy, the last layer last (on the
features the others settled).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from fishbear.core.errors import ConfigError
from fishbear.engine.adapt.footage import shuffled_batches
from fishbear.engine.adapt.pseudo import PseudoSettings, pseudo

ORDER = ("colour", "bn", "tent", "pseudo")


@dataclass(frozen=True)
class AdaptSettings:
    """``methods``: some of :data:`ORDER`; ``batch_size``: pictures per forward pass;
    ``bn_source_weight``: the share of the training statistics kept by ``bn`` (0: the new footage's
    alone); ``tent_epochs`` and ``tent_lr``: passes over the footage and Adam's rate for ``tent``;
    ``pseudo``: ``pseudo``'s."""

    methods: tuple[str, ...]
    batch_size: int = 16
    bn_source_weight: float = 0.0
    tent_epochs: int = 1
    tent_lr: float = 1e-3
    seed: int = 0
    pseudo: PseudoSettings = field(default_factory=PseudoSettings)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in ORDER]
        if unknown or not self.methods:
            raise ConfigError(f"method={','.join(self.methods) or '(none)'}: choose among {', '.join(ORDER)} (several "
                              "as a list, e.g. method=[colour,bn]).")
        if not 0.0 <= self.bn_source_weight <= 1.0:
            raise ConfigError(f"bn_source_weight={self.bn_source_weight} must lie from 0 to 1.")
        object.__setattr__(self, "methods", tuple(m for m in ORDER if m in self.methods))


@dataclass
class Adaptation:
    """What the methods change: the network (in place), the normalisation (``mean``, ``std``, in
    0-1 units), and a note per method for the report. ``pictures``: the footage as uint8 network
    input; ``reference``: the training footage's per-channel mean and spread, computed when asked;
    ``source``: up to n of the run's training pictures (uint8 network input, fed as in training
    with the trained normalisation) and their targets, read when asked; ``labelled``: pictures of
    the footage a person labelled and their targets; ``doubtful``: the footage pictures to put to a
    person (index, doubt), chosen by ``pseudo``."""

    network: torch.nn.Module
    kind: Any
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pictures: torch.Tensor
    reference: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    settings: AdaptSettings
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    source: Callable[[int], tuple[torch.Tensor, Any]] | None = None
    labelled: tuple[torch.Tensor, Any] | None = None
    kind_settings: Any = None
    notes: dict[str, Any] = field(default_factory=dict)
    doubtful: list[tuple[int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.trained_mean, self.trained_std = self.mean, self.std  # before colour folds its map in

    def batches(self, generator: torch.Generator) -> Any:
        from fishbear.data.feed import Normalize

        normalize = Normalize(self.mean, self.std).to(self.device)
        for batch in shuffled_batches(self.pictures, self.settings.batch_size, generator):
            yield normalize(batch.to(self.device))


def batch_norms(network: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    """The network's batch-norm layers (a detector's frozen ones are not among them)."""
    return [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def refusal(method: str, network: torch.nn.Module, kind: Any) -> str | None:
    """Why ``method`` cannot adapt this network or kind (one line), or None."""
    if method in ("bn", "tent") and not batch_norms(network):
        return (f"method={method} re-fits batch-norm layers, and this network has none (or only frozen ones); "
                "use method=colour.")
    if method in ("tent", "pseudo") and not kind.has_probabilities:
        return (f"method={method} learns from the network's confident class probabilities, and a '{kind.name}' model "
                "predicts no probabilities; use method=[colour,bn].")
    return None


def channel_stats(pictures: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of uint8 N x 3 x H x W pictures, in 0-1 units."""
    values = pictures.to(torch.float64).div(255.0).transpose(0, 1).reshape(pictures.shape[1], -1)
    return values.mean(dim=1), values.std(dim=1).clamp_min(1e-3)


def colour(state: Adaptation) -> dict[str, Any]:
    """Fold the map ``x -> (x - new_mean) * ref_std / new_std + ref_mean`` into the normalisation."""
    new_mean, new_std = channel_stats(state.pictures)
    ref_mean, ref_std = state.reference()
    scale = ref_std / new_std
    shift = ref_mean - scale * new_mean
    mean = torch.tensor(state.mean, dtype=torch.float64)
    std = torch.tensor(state.std, dtype=torch.float64)
    state.mean = tuple(float(v) for v in (mean - shift) / scale)
    state.std = tuple(float(v) for v in std / scale)
    return {"footage_mean": _rounded(new_mean), "footage_std": _rounded(new_std), "training_mean": _rounded(ref_mean),
            "training_std": _rounded(ref_std), "scale": _rounded(scale), "shift": _rounded(shift)}


def _rounded(values: torch.Tensor) -> list[float]:
    return [round(float(v), 5) for v in values]


@torch.no_grad()
def bn(state: Adaptation) -> dict[str, Any]:
    """Every batch-norm layer's running mean and variance estimated again over the whole footage
    (cumulative, shuffled), then mixed with the training ones by ``bn_source_weight``."""
    layers = batch_norms(state.network)
    kept = [(layer.running_mean.clone(), layer.running_var.clone(), layer.momentum) for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over the batches, not an exponential one
    state.network.eval()
    for layer in layers:
        layer.train()
    generator = torch.Generator().manual_seed(state.settings.seed)
    for batch in state.batches(generator):
        if len(batch) > 1 or len(state.pictures) == 1:  # a batch of one has no spread
            state.network(batch)
    weight = state.settings.bn_source_weight
    for layer, (mean, var, momentum) in zip(layers, kept):
        layer.running_mean.mul_(1 - weight).add_(mean, alpha=weight)
        layer.running_var.mul_(1 - weight).add_(var, alpha=weight)
        layer.momentum = momentum
    state.network.eval()
    return {"layers": len(layers), "pictures": len(state.pictures), "source_weight": weight}


def tent(state: Adaptation) -> dict[str, Any]:
    """Train the batch-norm scales and shifts (nothing else) to lower the predictions' entropy on the
    footage, normalising by each batch's statistics; then :func:`bn` for the saved statistics."""
    layers = batch_norms(state.network)
    parameters = [p for layer in layers for p in (layer.weight, layer.bias) if p is not None]
    kept = {p: p.requires_grad for p in state.network.parameters()}
    for p in state.network.parameters():
        p.requires_grad_(False)
    for p in parameters:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(parameters, lr=state.settings.tent_lr)
    generator = torch.Generator().manual_seed(state.settings.seed + 1)
    state.network.eval()
    for layer in layers:
        layer.train()
    losses = []
    for _ in range(state.settings.tent_epochs):
        for batch in state.batches(generator):
            if len(batch) < 2:
                continue
            loss = state.kind.entropy(state.network(batch))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
    for p, flag in kept.items():
        p.requires_grad_(flag)
    entropy = torch.stack(losses) if losses else torch.zeros(1)
    return {"epochs": state.settings.tent_epochs, "lr": state.settings.tent_lr, "steps": len(losses),
            "entropy_first": round(float(entropy[0]), 5), "entropy_last": round(float(entropy[-1]), 5),
            "statistics": bn(state)}


METHODS: dict[str, Callable[[Adaptation], dict[str, Any]]] = {"colour": colour, "bn": bn, "tent": tent, "pseudo": pseudo}
