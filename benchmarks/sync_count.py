"""Sync-type tensor operations counted while armed: what reads a device's value back to the host.

On a GPU each of these empties the queue: ``.item()`` and ``float(tensor)`` (``_local_scalar_dense``),
``nonzero`` and boolean masks, a Python ``if`` on a tensor (``is_nonzero``), ``equal``, and copies
to the host. On a CPU nothing waits, but the same operations run, so counting them proves on a CPU
what a GPU would pay (``tests/training/test_syncs.py``; ``benchmarks/gpu.py --device cpu``).
"""

from __future__ import annotations

import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_TYPE = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.is_nonzero.default",
             "aten.equal.default", "aten.allclose.default"}


class SyncCounter(TorchDispatchMode):
    """Counts sync-type operations while ``armed``, by operation and the Python lines that made them."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.count: Counter = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = str(func)
        if self.armed and (name in SYNC_TYPE or _blocking_copy_to_host(name, args, kwargs or {})):
            frames = [f for f in traceback.extract_stack()[:-2] if "/torch/" not in f.filename]
            self.count[(name, " <- ".join(f"{Path(f.filename).name}:{f.name}" for f in frames[-3:]))] += 1
        return func(*args, **(kwargs or {}))

    def per_step(self, steps: int) -> float:
        return sum(self.count.values()) / steps


def _blocking_copy_to_host(name: str, args: tuple, kwargs: dict) -> bool:
    """A copy from a device to the host that waits for it (``.cpu()``, ``.to("cpu")``; a
    ``non_blocking`` copy into pinned memory does not wait, and a cast on the device is no copy)."""
    if name == "aten._to_copy.default":
        source, target = args[0], kwargs.get("device")
        return (isinstance(source, torch.Tensor) and source.device.type != "cpu" and target is not None
                and torch.device(target).type == "cpu" and not kwargs.get("non_blocking", False))
    if name == "aten.copy_.default":
        target, source = args[0], args[1]
        blocking = not (args[2] if len(args) > 2 else kwargs.get("non_blocking", False))
        return (isinstance(source, torch.Tensor) and source.device.type != "cpu" and isinstance(target, torch.Tensor)
                and target.device.type == "cpu" and blocking)
    return False
