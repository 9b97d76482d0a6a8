"""Config helpers: resolvers for device-dependent defaults and instantiation with type checks.

Hydra already refuses unknown keys (struct mode) and unknown group choices. What it cannot see is
a value of the wrong type for the class it will build (``trainer.max_epochs=abc``), which would
surface as a traceback deep inside that class. :func:`instantiate` checks each ``_target_`` node
against the signature of the callable it names first, and says which key, what was given and
what is expected.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from fishbear.core.errors import ConfigError, FishbearError, locate

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def default_precision() -> str:
    """What ``trainer=default`` trains in here: bf16 where the GPU has it, else fp16; 32-bit on CPU."""
    import torch

    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def run_id() -> str:
    """What makes a run folder this process's own: two runs started in the same second on one
    machine have different process ids (``--resume`` and DDP's workers are handed the folder).
    Registered with a cache, like Hydra's ``now``: a launcher that runs jobs in other processes
    (submitit, joblib) hands them the sweep config with its cache, so they resolve the parent's
    sweep folder instead of one folder per job process."""
    import os

    return str(os.getpid())


def slurm_tasks(devices: Any) -> int:
    """SLURM tasks per node for ``trainer.devices``: one process per device (Lightning's SLURM
    environment checks that the two agree)."""
    if isinstance(devices, int) and devices >= 1:
        return devices
    if isinstance(devices, (list, ListConfig)) and len(devices) >= 1:
        return len(devices)
    raise ConfigError(f"trainer.devices={devices}: under SLURM say how many devices each node runs (e.g. "
                      "trainer.devices=4); the job is sized from it before any node is seen")


def slurm_gpus(accelerator: str, devices: Any) -> int | None:
    """GPUs per node to ask SLURM for: the devices, unless the trainer runs on CPU."""
    return None if str(accelerator) == "cpu" else slurm_tasks(devices)


def fine_tune_default(key: str, otherwise: Any, *, _root_: DictConfig) -> Any:
    """``${fishbear.fine_tune:lr,3e-3}``: the rate a run fine-tuning a pretrained model of its kind
    starts from (``trainer.fine_tune.<kind>.<key>``, e.g. fastai's fine_tune for classifiers), else
    ``otherwise``. A run fine-tunes when ``callbacks.finetune.enabled`` (``model.pretrained``, or
    ``callbacks=finetune``); a ``trainer.lr=...`` the user types replaces the interpolation."""
    if not OmegaConf.select(_root_, "callbacks.finetune.enabled", default=False):
        return otherwise
    target = OmegaConf.select(_root_, "task._target_", default=None)
    if target is None:
        return otherwise
    from fishbear.kinds import kind_of_task

    rates = OmegaConf.select(_root_, f"trainer.fine_tune.{kind_of_task(str(target)).name}", default=None)
    return otherwise if rates is None else rates.get(key, otherwise)


def register_resolvers() -> None:
    """``${fishbear.precision:}`` and ``${fishbear.cuda:}`` let the default trainer fit the machine;
    ``${fishbear.fine_tune:key,otherwise}`` the rates fit fine-tuning; ``${fishbear.run_id:}``
    keeps run folders apart; ``${fishbear.slurm_*:}`` size SLURM jobs."""
    if not OmegaConf.has_resolver("fishbear.run_id"):
        OmegaConf.register_new_resolver("fishbear.run_id", run_id, use_cache=True)
    if not OmegaConf.has_resolver("fishbear.cuda"):
        OmegaConf.register_new_resolver("fishbear.cuda", _cuda)
    if not OmegaConf.has_resolver("fishbear.slurm_tasks"):
        OmegaConf.register_new_resolver("fishbear.slurm_tasks", slurm_tasks)
        OmegaConf.register_new_resolver("fishbear.slurm_gpus", slurm_gpus)
    if not OmegaConf.has_resolver("fishbear.precision"):
        OmegaConf.register_new_resolver("fishbear.precision", default_precision)
    if not OmegaConf.has_resolver("fishbear.fine_tune"):
        OmegaConf.register_new_resolver("fishbear.fine_tune", fine_tune_default)


register_resolvers()


def _matches(value: Any, annotation: Any) -> bool | None:
    """True/False when the annotation is understood, None when it is not (then it is not checked)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        answers = [_matches(value, arg) for arg in typing.get_args(annotation)]
        if any(a is True for a in answers):
            return True
        return None if any(a is None for a in answers) else False
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if value is None:
        return False
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation in (Path, "Path"):
        return isinstance(value, (str, Path))
    if origin in (tuple, list, collections.abc.Sequence) or annotation in (tuple, list):
        return isinstance(value, (list, tuple, ListConfig))
    if origin in (dict, collections.abc.Mapping) or annotation is dict:
        return isinstance(value, (dict, DictConfig))
    if isinstance(value, DictConfig) and "_target_" in value:
        return None  # a nested object, checked on its own
    return None


def _describe(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    return text or str(annotation).replace("typing.", "")


def check_node(node: DictConfig, where: str, skip: set[str] | None = None) -> None:
    """Check the keys of one ``_target_`` node against the target's signature."""
    target = locate(str(node["_target_"]))
    fn = target.__init__ if inspect.isclass(target) else target
    try:
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: nothing to check against
        return
    params = signature.parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key in node:
        key = str(key)
        if key in _HYDRA_KEYS or key in (skip or set()):
            continue
        if key not in params:
            if takes_kwargs:
                continue
            valid = ", ".join(k for k in params if k not in ("self", "args", "kwargs"))
            raise ConfigError(f"{where}.{key}: {target.__qualname__} takes no argument '{key}'. Valid keys: {valid}")
        value = node[key]
        if OmegaConf.is_missing(node, key):
            raise ConfigError(f"{where}.{key} must be set (it is '???'); add {where}.{key}=... to the command line")
        ok = _matches(value, hints.get(key, params[key].annotation))
        if ok is False:
            raise ConfigError(
                f"{where}.{key}={value!r} has the wrong type: {target.__qualname__} expects "
                f"{_describe(hints.get(key, params[key].annotation))}."
            )
        if isinstance(value, DictConfig) and "_target_" in value:
            check_node(value, f"{where}.{key}")


def instantiate(node: DictConfig, where: str, **kwargs: Any) -> Any:
    """Hydra's ``instantiate`` after :func:`check_node`; ``kwargs`` are values only known at run time."""
    check_node(node, where, skip=set(kwargs))
    try:
        if not kwargs:
            return hydra_instantiate(node)
        # run-time values (networks, dicts holding ``_target_`` keys) must reach the callable
        # untouched, not be merged into the config and instantiated in turn
        return hydra_instantiate(node, _partial_=True)(**kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, FishbearError):  # our own message, already clear
            raise err.__cause__ from None
        raise


def target_children(group: DictConfig | None) -> list[tuple[str, DictConfig]]:
    """The ``_target_`` entries of a group node such as ``callbacks`` or ``logger``, with their names."""
    return [(str(name), child) for name, child in (group or {}).items()
            if isinstance(child, DictConfig) and "_target_" in child]


def instantiate_group(group: DictConfig | None, where: str) -> list[Any]:
    """Every ``_target_`` entry of a group node, checked and instantiated in order."""
    return [instantiate(child, f"{where}.{name}") for name, child in target_children(group)]


def choice_names(cfg: DictConfig) -> dict[str, str]:
    """Which file of each config group was picked (``data=shapes``, ``model=convnet``...)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        choices = HydraConfig.get().runtime.choices
        return {k: str(v) for k, v in choices.items() if not k.startswith("hydra") and v is not None}
    except Exception:
        return {}
