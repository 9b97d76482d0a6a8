"""A checkpoint adapted to new footage, written as a new one: the source checkpoint is only read.

The adapted checkpoint is the source's file with the network's weights and statistics replaced,
the normalisation changed where ``colour`` folded its map into it, the optimiser's state left out
(it belonged to the old weights), and ``provenance.adapted`` saying where it came from: the source
checkpoint's path and sha256, the footage's fingerprint, the methods and their settings, and what
each did. Every reader of checkpoints reads it as it reads any other.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from fishbear.core.errors import DataError
from fishbear.engine.adapt.footage import Footage
from fishbear.engine.adapt.methods import METHODS, Adaptation, AdaptSettings, channel_stats, refusal

REFERENCE_PICTURES = 300  # training pictures whose colours stand for the training footage's


def adapt_checkpoint(ckpt: str | Path, footage: Footage, settings: AdaptSettings, reference: Footage | None = None,
                     device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint at ``ckpt`` adapted to ``footage``: the new checkpoint's contents (to be
    saved with ``torch.save``) and what was done, for the report. ``reference``: pictures of the
    training footage for ``colour`` (default: the run's own training split, read again from its
    data config)."""
    from fishbear.core.outputs import sha256_of
    from fishbear.data.transforms import build_transforms
    from fishbear.engine.checkpoint import load_checkpoint, network_from_checkpoint
    from fishbear.kinds import get_kind

    started = time.perf_counter()
    checkpoint = load_checkpoint(ckpt)
    meta, kind = checkpoint.meta, get_kind(checkpoint.meta.kind)
    network = network_from_checkpoint(checkpoint).to(device)
    for method in settings.methods:
        why = refusal(method, network, kind)
        if why:
            raise DataError(why)
    transform = build_transforms("predict", meta.image_size, None, kind, meta.resize, meta.preprocess)
    state = Adaptation(network=network, kind=kind, mean=tuple(meta.mean), std=tuple(meta.std),
                       pictures=footage.fed(transform), settings=settings, device=torch.device(device),
                       reference=lambda: channel_stats(_reference(meta, transform, reference)))
    notes = {method: METHODS[method](state) for method in settings.methods}
    adapted = {"from": str(Path(ckpt).absolute()), "from_sha256": sha256_of(Path(ckpt)), "footage": footage.source,
               "methods": list(settings.methods), "settings": dataclasses.asdict(settings), "notes": notes,
               "seconds": round(time.perf_counter() - started, 2)}
    new_meta = meta.replace(mean=state.mean, std=state.std,
                            provenance=dataclasses.replace(meta.provenance, adapted=adapted))
    raw = dict(torch.load(Path(ckpt), map_location="cpu", weights_only=True))
    weights = {f"network.{k}": v.detach().cpu() for k, v in network.state_dict().items()}
    raw["state_dict"] = {**{k: v for k, v in raw.get("state_dict", {}).items() if not k.startswith("network.")},
                         **weights}
    for stale in ("optimizer_states", "lr_schedulers"):
        raw.pop(stale, None)
    new_meta.write_into(raw)
    return raw, adapted


def _reference(meta: Any, transform: Any, given: Footage | None) -> torch.Tensor:
    """The training footage as the network's uint8 input: ``given``, or up to
    :data:`REFERENCE_PICTURES` of the run's training split (its data config, read from the checkpoint)."""
    if given is not None:
        return given.fed(transform)
    from fishbear.data.images import load_rgb
    from fishbear.engine.adapt.footage import spread_evenly
    from fishbear.engine.run_data import run_datamodule

    try:
        datamodule = run_datamodule(meta)
    except DataError as err:
        raise DataError(f"method=colour maps the new footage to the training footage's colours, and the run's training "
                        f"pictures cannot be read ({err}). Give some of them with reference=DIR.") from None
    samples = spread_evenly(datamodule.samples("train"), REFERENCE_PICTURES)
    return torch.stack([transform(image=load_rgb(s.image))["image"] for s in samples])
