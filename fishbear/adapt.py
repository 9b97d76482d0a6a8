"""``fishbear adapt ckpt=RUN/checkpoints/best.ckpt frames=DIR|video=FILE [method=[colour,bn]] [out=DIR]``
(overrides of ``conf/adapt.yaml``).

Fits a trained model to new footage without its labels (:mod:`fishbear.engine.adapt`) and writes a
new run folder: ``checkpoints/best.ckpt`` (the adapted weights and normalisation, its provenance
naming the source checkpoint, the footage's fingerprint and the methods), ``adapt.json`` and
``adapt.md``. The source run is only read. Every command that takes a checkpoint takes the adapted
one: ``predict``, ``frames sort_with=``, ``evaluate``, ``export``, ``serve``.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from fishbear.core.errors import ConfigError
from fishbear.engine.commandline import check_ranges, compose_cli, user_errors_exit

USAGE = ("fishbear adapt ckpt=PATH frames=DIR|video=FILE [method=[colour,bn]] [reference=DIR] [out=DIR] [every=1] "
         "[limit=2000] [overwrite=false]")
WRITTEN = ("checkpoints/best.ckpt", "adapt.json", "adapt.md")


def adapt(cfg: DictConfig) -> dict[str, Any]:
    """Adapt ``cfg.ckpt`` to the footage and write the new run folder; returns ``adapt.json``'s contents."""
    import torch

    from fishbear.core.outputs import OutputFiles
    from fishbear.engine.adapt.adapted import adapt_checkpoint
    from fishbear.engine.adapt.methods import AdaptSettings

    settings = AdaptSettings(methods=_methods(cfg.method), batch_size=int(cfg.batch_size),
                             bn_source_weight=float(cfg.bn_source_weight), tent_epochs=int(cfg.tent_epochs),
                             tent_lr=float(cfg.tent_lr), seed=int(cfg.seed))
    ckpt = Path(str(cfg.ckpt)).expanduser()
    out = Path(str(cfg.out)).expanduser() if cfg.out else Path("outputs") / "adapt" / time.strftime("%Y-%m-%d_%H-%M-%S")
    if out.absolute() == ckpt.absolute().parent.parent or ckpt.absolute().parent.parent in out.absolute().parents:
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


def footage_of(cfg: DictConfig, reference: bool = False) -> Any:
    """The footage ``frames=`` or ``video=`` names (or ``reference=``'s folder)."""
    from fishbear.engine.adapt.footage import Footage

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


@user_errors_exit
def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = compose_cli("adapt", sys.argv[1:] if argv is None else argv, USAGE)
    return adapt(check_ranges(cfg, counts=("every", "limit", "batch_size", "tent_epochs")))


def cli(argv: list[str]) -> int:
    """``fishbear adapt ...`` and ``python -m fishbear.adapt ...``."""
    main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
