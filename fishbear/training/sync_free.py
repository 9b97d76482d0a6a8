"""What a training step keeps without a host-device sync.

A sync empties the GPU's queue: the CPU's work of the next step (collating, logging, the
optimiser's bookkeeping) is then added to the GPU's time instead of hidden under it. So a step
reads nothing back: losses are summed on the device (:class:`RunningLoss`), metric inputs
gathered there and handed to torchmetrics in rare large updates (:class:`BatchedUpdates`), and the
logged training loss travels to the host behind the queued work and is read when it has arrived
(:class:`AsyncScalar`). ``tests/training/test_syncs.py`` counts the sync-type operations of a step against
a plain loop's.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import MetricCollection


class RunningLoss:
    """The training loss as a batch-size-weighted mean kept on the loss's device, over the window
    since the last step log and over the epoch: adding costs two tensor additions, no sync."""

    def __init__(self) -> None:
        self._window: torch.Tensor | None = None
        self._epoch: torch.Tensor | None = None
        self._window_n = self._epoch_n = 0

    def add(self, loss: torch.Tensor, batch_size: int) -> None:
        value = loss.detach().float() * batch_size
        self._window = value if self._window is None else self._window + value
        self._epoch = value if self._epoch is None else self._epoch + value
        self._window_n += batch_size
        self._epoch_n += batch_size

    def has_window(self) -> bool:
        return self._window is not None

    def take_window(self) -> torch.Tensor:
        assert self._window is not None
        mean, self._window, self._window_n = self._window / self._window_n, None, 0
        return mean

    def take_epoch(self) -> torch.Tensor | None:
        mean = None if self._epoch is None else self._epoch / self._epoch_n
        self._epoch, self._epoch_n, self._window, self._window_n = None, 0, None, 0
        return mean


class AsyncScalar:
    """A scalar on the device, on its way to the host: copied into pinned memory behind the work
    already queued (no wait), read later as a Python number once it has arrived. Reading it goes
    through numpy, not a tensor op: nothing of it waits on the device."""

    def __init__(self, value: torch.Tensor) -> None:
        value = value.detach().to(torch.float32).reshape(())
        self.event: Any = None
        if value.device.type == "cuda":
            self.host = torch.empty((), dtype=torch.float32, pin_memory=True)
            self.host.copy_(value, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.host = value.clone()  # already on the host

    def ready(self) -> bool:
        return self.event is None or bool(self.event.query())

    def value(self) -> float:
        if self.event is not None:
            self.event.synchronize()  # at once when ready(); else waits for this copy alone
        return float(self.host.numpy())


class BatchedUpdates:
    """Metric inputs gathered on the device and handed to torchmetrics in one large ``update``:
    a collection's update costs ~0.3 ms of Python a call whatever the batch, and on a GPU its
    bincounts and checks read back from the device (a sync each). Bounded by elements (a
    segmentation's logits flush every step or two; a classifier's, every few hundred steps);
    flushed before the epoch's metrics are computed, so the figures are those of per-step updates."""

    def __init__(self, max_steps: int | None = None, max_elements: int = 1 << 24) -> None:
        self.max_steps, self.max_elements = max_steps, max_elements
        self._pending: list[tuple[torch.Tensor, ...]] = []
        self._elements = 0

    def add(self, metrics: MetricCollection, inputs: tuple[torch.Tensor, ...]) -> None:
        self._pending.append(tuple(x.detach() for x in inputs))
        self._elements += sum(x.numel() for x in inputs)
        if (self.max_steps is not None and len(self._pending) >= self.max_steps) or self._elements >= self.max_elements:
            self.flush(metrics)

    def flush(self, metrics: MetricCollection) -> None:
        if self._pending:
            metrics.update(*(torch.cat(parts) for parts in zip(*self._pending)))
        self._pending, self._elements = [], 0
