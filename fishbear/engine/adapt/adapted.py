"""A checkpoint adapted to new footage, written as a new one: the source checkpoint is only read.

The adapted checkpoint is the source's file with the network's weights and statistics replaced,
the normalisation changed where ``colour`` folded its map into it, the optimiser's state left out
(it belonged to the old weights), and ``provenance.adapted`` saying where it came from: the source
checkpoint's path and sha256, the footage's fingerprint, the methods and their settings, and what
each did. Every reader of checkpoints reads it as it reads any other.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

import torch

from fishbear.core.errors import ConfigError, DataError
from fishbear.engine.adapt.footage import Footage
from fishbear.engine.adapt.methods import METHODS, Adaptation, AdaptSettings, channel_stats, refusal

REFERENCE_PICTURES = 300  # training pictures whose colours stand for the training footage's
WRITTEN = ("checkpoints/best.ckpt", "adapt.json", "adapt.md")


def adapt_checkpoint(ckpt: str | Path, footage: Footage, settings: AdaptSettings, reference: Footage | None = None,
                     device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint at ``ckpt`` adapted to ``footage``: the new checkpoint's contents (to be
    saved with ``torch.save``) and what was done, for the report. ``reference``: pictures of the
    training footage for ``colour`` (default: the run's own training split, read again from its
    data config)."""
    from fishbear.core.outputs import sha256_of
    from fishbear.data.transforms import build_transforms
    from fishbear.engine.checkpoint import load_checkpoint, network_from_checkpoint, rewritten
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
    weights = {**checkpoint.state_dict, **{f"network.{k}": v for k, v in network.state_dict().items()}}
    return rewritten(ckpt, weights, new_meta, drop=("optimizer_states", "lr_schedulers")), adapted


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


def adapt_run(cfg: Any) -> dict[str, Any]:
    """Adapt ``cfg.ckpt`` to the footage (``conf/adapt.yaml``'s settings) and write the new run
    folder; returns ``adapt.json``'s contents. ``fishbear adapt`` and ``frames adapt=true`` run it."""
    from fishbear.core.containment import is_within
    from fishbear.core.outputs import OutputFiles

    settings = AdaptSettings(methods=_methods(cfg.method), batch_size=int(cfg.batch_size),
                             bn_source_weight=float(cfg.bn_source_weight), tent_epochs=int(cfg.tent_epochs),
                             tent_lr=float(cfg.tent_lr), seed=int(cfg.seed))
    ckpt = Path(str(cfg.ckpt)).expanduser()
    out = Path(str(cfg.out)).expanduser() if cfg.out else Path("outputs") / "adapt" / time.strftime("%Y-%m-%d_%H-%M-%S")
    if is_within(out, ckpt.parent.parent):
        raise ConfigError(f"out={out} is inside the source run {ckpt.parent.parent}; the source run is only read. Give "
                          "another out=.")
    outputs = OutputFiles(bool(cfg.overwrite), way_out="another out=")
    outputs.check_folder(out, names=lambda p: p.relative_to(out).as_posix() in WRITTEN)
    footage = footage_of(cfg)
    reference = footage_of(cfg, reference=True) if cfg.reference else None
    raw, report = adapt_checkpoint(ckpt, footage, settings, reference, str(cfg.device))
    buffer = io.BytesIO()
    torch.save(raw, buffer)
    outputs.write_bytes(out / "checkpoints" / "best.ckpt", buffer.getvalue())
    outputs.write_text(out / "adapt.json", json.dumps(report, indent=2) + "\n")
    outputs.write_text(out / "adapt.md", _markdown(report))
    outputs.close()
    print(f"Adapted {ckpt} to {footage.source['pictures']} pictures of the new footage by {', '.join(settings.methods)} "
          f"in {report['seconds']:.1f} s: {out / 'checkpoints' / 'best.ckpt'}. Sort with it: fishbear frames video=... "
          f"sort_with={out / 'checkpoints' / 'best.ckpt'}{outputs.note()}")
    return report


def footage_of(cfg: Any, reference: bool = False) -> Footage:
    """The footage ``frames=`` or ``video=`` names (or ``reference=``'s folder)."""
    if reference:
        return Footage.from_folder(str(cfg.reference), int(cfg.limit))
    if bool(cfg.frames) == bool(cfg.video):
        raise ConfigError("give the new footage as frames=DIR (a folder of pictures) or video=FILE, one of the two.")
    if cfg.frames:
        return Footage.from_folder(str(cfg.frames), int(cfg.limit))
    return Footage.from_video(str(cfg.video), int(cfg.every), int(cfg.limit))


def _methods(value: Any) -> tuple[str, ...]:
    items = str(value).split(",") if isinstance(value, str) else list(value)
    return tuple(str(m).strip() for m in items if str(m).strip())


def _markdown(report: dict[str, Any]) -> str:
    footage = report["footage"]
    where = footage.get("frames") or f"{footage.get('video')} (every {footage.get('every')} frames)"
    lines = ["# Adapted checkpoint", "", "| | |", "|---|---|", f"| from | {report['from']} |",
             f"| source sha256 | {report['from_sha256']} |", f"| footage | {where} |",
             f"| pictures | {footage['pictures']} of {footage['of']} |", f"| footage sha256 | {footage['sha256']} |",
             f"| methods | {', '.join(report['methods'])} |", f"| seconds | {report['seconds']} |", ""]
    for method, note in report["notes"].items():
        lines += [f"## {method}", "", "```json", json.dumps(note, indent=2), "```", ""]
    return "\n".join(lines)
