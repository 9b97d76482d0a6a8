"""A fishbear checkpoint: Lightning's weights plus what inference needs, read in one place.

Every reader of a checkpoint (train's test at the trained size, evaluate, predict, frames, the
multi-label threshold tuning) goes through :func:`load_checkpoint`, and the ``fishbear`` section
is checked into a :class:`CheckpointMeta` before anything is built from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fishbear.errors import CheckpointError
from fishbear.kinds import KINDS, Kind, get_kind

_REQUIRED = {"kind": str, "classes": list, "image_size": (int, list), "mean": list, "std": list, "model_cfg": dict}


@dataclass(frozen=True)
class CheckpointMeta:
    """The ``fishbear`` section of a checkpoint. ``extra`` holds what a kind adds (multi-label
    thresholds, the segmentation void code, the detection score threshold)."""

    kind: str
    classes: list[str]
    image_size: int | list[int]
    mean: list[float]
    std: list[float]
    model_cfg: dict[str, Any]
    data_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, meta: dict[str, Any], path: Path) -> CheckpointMeta:
        for key, types in _REQUIRED.items():
            if not isinstance(meta.get(key), types):
                raise CheckpointError(f"{path}: its fishbear section has no valid '{key}' ({meta.get(key)!r}); "
                                      "it was not written by python -m fishbear.train, or is damaged.")
        if meta["kind"] not in KINDS:
            raise CheckpointError(f"{path} is a checkpoint of kind {meta['kind']!r}, which this fishbear does not know "
                                  f"(known: {', '.join(KINDS)}).")
        known = {"kind", "classes", "image_size", "mean", "std", "model_cfg", "data_name"}
        return cls(kind=meta["kind"], classes=list(meta["classes"]), image_size=meta["image_size"],
                   mean=list(meta["mean"]), std=list(meta["std"]), model_cfg=dict(meta["model_cfg"]),
                   data_name=meta.get("data_name"), extra={k: v for k, v in meta.items() if k not in known})

    def as_dict(self) -> dict[str, Any]:
        """The plain form kinds read (``Kind.interpret``) and checkpoints store."""
        return {"kind": self.kind, "classes": list(self.classes), "image_size": self.image_size, "mean": list(self.mean),
                "std": list(self.std), "model_cfg": dict(self.model_cfg), "data_name": self.data_name, **self.extra}


def load_checkpoint(path: str | Path, kind: Kind | str | None = None) -> dict[str, Any]:
    """Read a fishbear checkpoint as tensors and plain data only (``weights_only``: unpickling
    runs no code from the file); ``kind`` refuses a checkpoint of another task kind."""
    path = Path(path)
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
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"{path} cannot be read as a checkpoint of tensors and plain data "
                              f"({type(err).__name__}: {first}).") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("fishbear"), dict):
        raise CheckpointError(f"{path} is not a fishbear checkpoint (it has no 'fishbear' section); "
                              "use a checkpoint written by python -m fishbear.train.")
    meta = CheckpointMeta.from_dict(checkpoint["fishbear"], path)
    if kind is not None and meta.kind != get_kind(kind).name:
        raise CheckpointError(f"{path} is a '{meta.kind}' checkpoint, but a '{get_kind(kind).name}' one is needed here.")
    return checkpoint


def read_meta(path: str | Path, kind: Kind | str | None = None) -> CheckpointMeta:
    """The checked ``fishbear`` section of the checkpoint at ``path``."""
    path = Path(path)
    return CheckpointMeta.from_dict(load_checkpoint(path, kind)["fishbear"], path)


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


def network_from_checkpoint(checkpoint: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the network from the checkpoint's own model config, weights from the checkpoint
    (``pretrained`` is switched off: nothing is downloaded). Only fishbear's own network builders
    (``fishbear.models.NETWORK_BUILDERS``) with plain settings are built: a shared checkpoint
    cannot make this call, or anything nested in its config, run code of its choosing."""
    from hydra.utils import instantiate

    from fishbear.models import NETWORK_BUILDERS

    meta = checkpoint["fishbear"]
    model_cfg = dict(meta["model_cfg"])
    target = model_cfg.pop("_target_", None)
    if target not in NETWORK_BUILDERS:
        raise CheckpointError(f"the checkpoint's model_cfg._target_ is {target!r}, which is not one of fishbear's networks "
                              f"({', '.join(sorted(NETWORK_BUILDERS))}); it was altered or is not fishbear's.")
    _plain(model_cfg, "model_cfg")
    if "pretrained" in model_cfg:
        model_cfg["pretrained"] = False
    network = instantiate({"_target_": target, "_recursive_": False, **model_cfg},
                          num_classes=get_kind(meta["kind"]).num_outputs(len(meta["classes"])))
    state = {k.removeprefix("network."): v for k, v in checkpoint["state_dict"].items() if k.startswith("network.")}
    network.load_state_dict(state)
    return network
