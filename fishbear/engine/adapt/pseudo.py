"""``pseudo``: the network's last layer fitted again to its own confident answers on the new footage,
with the run's training pictures and their labels kept in view, and the doubtful pictures put to
a person.

Why the last layer alone: a few dozen frames of new footage cannot fine-tune a whole network.
Fitting all of it to its own answers on the 33 later fish frames swung F1 from 0.50 to 0.94 between
seeds (experiments/adapt/README.md); the last layer, anchored to its trained weights and fitted on
the footage's confident answers beside the training pictures' labels, cannot forget what it knew
and moves its boundary to where the new footage's pictures lie. The layer's inputs are computed
once (the body is frozen, in eval mode) and the layer is fitted on them, full batch, in seconds.

Doubtful pictures: those the network is least sure of (:meth:`Kind.doubt`), ``review_share`` of
the footage, go to a person (``adapt`` writes them out). Pictures a person labelled
(``labelled=``) count as labelled, in place of the network's guess, when ``adapt`` runs again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch

from fishbear.core.errors import ConfigError, DataError
from fishbear.engine.features import last_layer, layer_inputs

REFUSAL = ("method=pseudo refits the network's last layer, and this network's answer is not that layer's output; use "
           "method=[colour] or method=[colour,bn].")
FEATURE_BYTES = 1 << 30  # the cached inputs of the last layer, footage and training pictures together


@dataclass(frozen=True)
class PseudoSettings:
    """``threshold``: how sure an answer must be to be learnt from; ``steps``, ``lr``: Adam's full
    batch steps and rate; ``anchor``: the pull back to the trained weights (an L2 penalty on the
    change); ``source_weight``: the training pictures' share of the loss (0: the footage alone);
    ``source_pictures``: how many training pictures (spread evenly); ``review_share``: the share of
    the footage put to a person."""

    threshold: float = 0.8
    steps: int = 100
    lr: float = 1e-3
    anchor: float = 0.01
    source_weight: float = 1.0
    source_pictures: int = 300
    review_share: float = 0.1

    def __post_init__(self) -> None:
        for name in ("lr", "anchor", "source_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"pseudo_{name}={getattr(self, name)} must be 0 or more.")


def fit_layer(layer: torch.nn.Module, kind: Any, parts: list[tuple[torch.Tensor, Any, Any, float]],
              settings: PseudoSettings, seed: int) -> list[float]:
    """Fit ``layer`` (in place) to ``parts``: (inputs, target, weight, share of the loss) each; returns
    the loss at each step."""
    torch.manual_seed(seed)
    start = [p.detach().clone() for p in layer.parameters()]
    optimizer = torch.optim.Adam(layer.parameters(), lr=settings.lr)
    losses = []
    with torch.enable_grad():
        for _ in range(settings.steps):
            loss = sum(share * kind.fit_loss(layer(inputs), target, weight)
                       for inputs, target, weight, share in parts if share > 0 and float(weight.sum()) > 0)
            loss = loss + settings.anchor * sum(((p - p0) ** 2).sum() for p, p0 in zip(layer.parameters(), start))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    return losses


def picture_budget(first: torch.Tensor, network: torch.nn.Module, layer: torch.nn.Module, normalize: Any) -> int:
    """How many pictures' layer inputs fit in :data:`FEATURE_BYTES` (a segmentation network's last
    layer sees a full-size map per picture)."""
    inputs, _ = layer_inputs(network, layer, [normalize(first[:1])], REFUSAL)
    return max(2, int(FEATURE_BYTES // max(inputs[0].numel() * 4, 1)))


def pseudo(state: Any) -> dict[str, Any]:
    """Refit the last layer (module docstring) and choose the doubtful pictures
    (``state.doubtful``: footage index and doubt, most doubtful first)."""
    from fishbear.data.feed import Normalize
    from fishbear.engine.adapt.footage import spread_evenly

    settings: PseudoSettings = state.settings.pseudo
    network, kind, device = state.network, state.kind, state.device
    layer = last_layer(network)
    if layer is None:
        raise DataError("method=pseudo refits the network's last layer, and this network has no linear or convolution "
                        "layer; use method=[colour].")
    normalize = Normalize(state.mean, state.std).to(device)
    trained = Normalize(state.trained_mean, state.trained_std).to(device)
    size = state.settings.batch_size

    def inputs_of(pictures: torch.Tensor, norm: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return layer_inputs(network, layer, (norm(pictures[i:i + size].to(device)) for i in range(0, len(pictures), size)),
                            REFUSAL)

    footage = state.pictures
    network.eval()
    person = _labelled_indices(footage, state.labelled[0]) if state.labelled is not None else set()
    budget = picture_budget(footage, network, layer, normalize)
    guessed = spread_evenly([i for i in range(len(footage)) if i not in person], budget // 2)
    parts, counts = [], {}
    if guessed:
        x, out = inputs_of(footage[guessed], normalize)
        target, weight = kind.pseudo_targets(out, settings.threshold)
        parts.append((x, target, weight, 1.0))
        counts["footage"] = len(guessed)
        counts["footage_sure_share"] = round(float(weight.mean()), 4)
    if state.labelled is not None:
        pictures, targets = state.labelled
        x, _ = inputs_of(pictures, normalize)
        target, weight = kind.labelled_targets(targets.to(device), state.kind_settings)
        parts.append((x, target, weight, 1.0))
        counts["labelled_by_a_person"] = len(pictures)
    if settings.source_weight > 0:
        pictures, targets = state.source(min(settings.source_pictures, budget // 2))
        x, _ = inputs_of(pictures, trained)
        target, weight = kind.labelled_targets(targets.to(device), state.kind_settings)
        parts.append((x, target, weight, settings.source_weight))
        counts["training_pictures"] = len(pictures)
    losses = fit_layer(layer, kind, parts, settings, state.settings.seed)
    network.eval()
    with torch.no_grad():  # what the adapted network is least sure of goes to the person
        doubt = torch.cat([kind.doubt(network(normalize(footage[i:i + size].to(device)))).cpu()
                           for i in range(0, len(footage), size)])
    asked = int(settings.review_share * len(footage))
    order = [i for i in torch.argsort(doubt, descending=True, stable=True).tolist() if i not in person]
    state.doubtful = [(i, float(doubt[i])) for i in order[:asked]]
    return {**counts, "threshold": settings.threshold, "steps": settings.steps, "lr": settings.lr,
            "anchor": settings.anchor, "source_weight": settings.source_weight,
            "loss_first": round(losses[0], 5) if losses else None, "loss_last": round(losses[-1], 5) if losses else None,
            "doubtful": len(state.doubtful), "review_share": settings.review_share}


def _labelled_indices(footage: torch.Tensor, labelled: torch.Tensor) -> set[int]:
    """The footage pictures a person labelled: equal, as network input, to a labelled picture (the
    pictures ``adapt`` put to the person are written losslessly)."""
    keys = {_digest(picture) for picture in labelled}
    return {i for i, picture in enumerate(footage) if _digest(picture) in keys}


def _digest(picture: torch.Tensor) -> bytes:
    return hashlib.blake2b(picture.contiguous().numpy().tobytes(), digest_size=16).digest()
