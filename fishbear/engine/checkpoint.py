"""A fishbear checkpoint file: Lightning's weights plus a :class:`~fishbear.kinds.meta.ModelMeta`,
read and rewritten in one place.

Every reader of a checkpoint (train's resume checks and its test at the trained size, evaluate,
predict, frames, export, serve) goes through :func:`load_checkpoint`, which returns the typed
meta; the engine, not a kind, writes checkpoint files (:func:`save_task_into`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fishbear.core.errors import CheckpointError
from fishbear.kinds import KINDS, Kind, get_kind
from fishbear.kinds.meta import ModelMeta


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as read: its path, the checked meta, the network's weights and Lightning's
    loop state (``progress``: the fit loop's counters, for a resume's bookkeeping)."""

    path: Path
    meta: ModelMeta
    state_dict: dict[str, torch.Tensor]
    progress: dict[str, Any]
    epoch: int

    @property
    def network_state(self) -> dict[str, torch.Tensor]:
        return {k.removeprefix("network."): v for k, v in self.state_dict.items() if k.startswith("network.")}

    def completed_epochs(self) -> int:
        """Epochs whose training ran to the end ("completed" is counted only after the end-of-epoch
        hooks that wrote this very checkpoint)."""
        return int(self.progress.get("epoch_progress", {}).get("current", {}).get("processed", self.epoch + 1))


def _read(path: Path) -> dict[str, Any]:
    if path.is_dir():
        inside = sorted(p.relative_to(path).as_posix() for p in path.glob("**/*.ckpt"))[:4]
        raise CheckpointError(f"{path} is a folder, not a checkpoint file"
                              + (f"; it holds {', '.join(inside)}" if inside else "")
                              + ". Give the file, e.g. <run folder>/checkpoints/best.ckpt.")
    if not path.is_file():
        hint = ""
        if path.parent.is_dir():
            found = sorted(p.name for p in path.parent.glob("*.ckpt"))
            hint = f" Checkpoints in {path.parent}: {', '.join(found) or 'none'}."
        raise CheckpointError(f"Checkpoint {path} does not exist.{hint} Runs keep theirs in <run folder>/checkpoints/.")
    try:
        # memory-mapped: reading the meta (the image size before a test) does not read the weights
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"{path} cannot be read as a checkpoint of tensors and plain data "
                              f"({type(err).__name__}: {first}).") from None


def load_checkpoint(path: str | Path, kind: Kind | str | None = None) -> Checkpoint:
    """Read a fishbear checkpoint as tensors and plain data only (``weights_only``: unpickling
    runs no code from the file); ``kind`` refuses a checkpoint of another task kind."""
    path = Path(path)
    raw = _read(path)
    meta = ModelMeta.read_from(raw, path, KINDS)
    if kind is not None and meta.kind != get_kind(kind).name:
        raise CheckpointError(f"{path} is a '{meta.kind}' checkpoint, but a '{get_kind(kind).name}' one is needed here.")
    return Checkpoint(path=path, meta=meta, state_dict=raw.get("state_dict", {}),
                      progress=raw.get("loops", {}).get("fit_loop", {}), epoch=int(raw.get("epoch", -1)))


def read_meta(path: str | Path, kind: Kind | str | None = None) -> ModelMeta:
    """The checked meta of the checkpoint at ``path``."""
    return load_checkpoint(path, kind).meta


def _plain(value: Any, where: str) -> None:
    """Model settings are names and numbers: anything Hydra would build or call is refused."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("_"):
                raise CheckpointError(f"{where}.{key} is not a model setting (a checkpoint's model_cfg holds names and "
                                      "values only); the checkpoint was altered or is not fishbear's.")
            _plain(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _plain(item, f"{where}[{i}]")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise CheckpointError(f"{where} holds a {type(value).__name__}, not a plain value.")


def build_network(meta: ModelMeta) -> torch.nn.Module:
    """The network ``meta`` describes, untrained and with nothing downloaded (``pretrained`` is
    switched off). Only fishbear's own network builders (``fishbear.models.NETWORK_BUILDERS``)
    with plain settings are built: a shared checkpoint cannot make this call, or anything nested
    in its config, run code of its choosing."""
    from hydra.utils import instantiate

    from fishbear.models import NETWORK_BUILDERS

    model_cfg = dict(meta.model_cfg)
    target = model_cfg.pop("_target_", None)
    if target not in NETWORK_BUILDERS:
        raise CheckpointError(f"the checkpoint's model_cfg._target_ is {target!r}, which is not one of fishbear's networks "
                              f"({', '.join(sorted(NETWORK_BUILDERS))}); it was altered or is not fishbear's.")
    _plain(model_cfg, "model_cfg")
    if "pretrained" in model_cfg:  # the trained weights follow: nothing is fetched, no weights file is read
        model_cfg["pretrained"] = False
        model_cfg.pop("weights", None)
    return instantiate({"_target_": target, "_recursive_": False, **model_cfg},
                       num_classes=get_kind(meta.kind).num_outputs(len(meta.classes)))


def network_from_checkpoint(checkpoint: Checkpoint) -> torch.nn.Module:
    """The checkpoint's network with its weights (:func:`build_network`)."""
    network = build_network(checkpoint.meta)
    network.load_state_dict(checkpoint.network_state)
    return network


def save_task_into(path: str | Path, task: Any) -> None:
    """Rewrite the checkpoint at ``path`` with ``task``'s state and meta, keeping Lightning's
    other entries (loops, optimiser): after fitting a kind may settle what the best weights must
    carry (the multi-label kind's tuned thresholds), and the engine writes it, atomically."""
    from fishbear.core.atomic import atomic_torch_save

    atomic_torch_save(path, rewritten(path, task.state_dict(), task.checkpoint_meta()))


def rewritten(path: str | Path, state_dict: dict[str, torch.Tensor], meta: ModelMeta,
              drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The checkpoint at ``path`` as a dict with ``state_dict`` and ``meta`` in place of its own and
    the entries ``drop`` left out (an optimiser's state that belonged to other weights), Lightning's
    others kept: what :func:`save_task_into` and ``fishbear adapt`` save."""
    raw = {k: v for k, v in torch.load(Path(path), map_location="cpu", weights_only=True).items() if k not in drop}
    raw["state_dict"] = {k: v.detach().cpu() for k, v in state_dict.items()}
    meta.write_into(raw)
    return raw
