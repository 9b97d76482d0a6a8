"""Sync-type tensor operations counted while armed: what reads a device's value back to the host.

On a GPU each of these empties the queue: ``.item()`` and ``float(tensor)`` (``_local_scalar_dense``),
``nonzero`` and boolean masks, a Python ``if`` on a tensor (``is_nonzero``), ``equal``, and copies
to the host. On a CPU nothing waits, but the same operations run, so counting them proves on a CPU
what a GPU would pay (``tests/test_syncs.py``; ``benchmarks/gpu.py --device cpu``).
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
        to_host = name in ("aten._to_copy.default", "aten.copy_.default") and any(
            isinstance(a, torch.Tensor) and a.device.type != "cpu" for a in args)
        if self.armed and (name in SYNC_TYPE or to_host):
            frames = [f for f in traceback.extract_stack()[:-2] if "/torch/" not in f.filename]
            self.count[(name, " <- ".join(f"{Path(f.filename).name}:{f.name}" for f in frames[-3:]))] += 1
        return func(*args, **(kwargs or {}))

    def per_step(self, steps: int) -> float:
        return sum(self.count.values()) / steps
