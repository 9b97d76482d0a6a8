from __future__ import annotations

import math

import pytest
import torch

from fishbear.core.errors import ConfigError
from fishbear.models.simple import ConvNet
from fishbear.training.optim import OptimSettings, build_optimizer, build_scheduler, group_rates, param_groups


def test_rates_spread_geometrically_from_lr_over_lr_div_to_lr():
    rates = group_rates(1e-2, 100, 5)
    assert rates[0] == pytest.approx(1e-4) and rates[-1] == pytest.approx(1e-2)
    ratios = [b / a for a, b in zip(rates, rates[1:])]
    assert all(r == pytest.approx(math.sqrt(10)) for r in ratios)
    assert group_rates(3e-3, 1, 4) == [pytest.approx(3e-3)] * 4


def test_one_named_param_group_per_layer_group():
    net = ConvNet(3, widths=(8, 16, 32))
    groups = param_groups(net, OptimSettings(lr=1e-3, lr_div=10))
    assert [g["name"] for g in groups] == ["stem", "stage1", "stage2", "classifier"]
    assert groups[0]["lr"] == pytest.approx(1e-4) and groups[-1]["lr"] == pytest.approx(1e-3)


def test_one_cycle_peaks_at_each_groups_rate_then_anneals():
    net = ConvNet(3, widths=(8, 16, 32))
    settings = OptimSettings(lr=1e-2, lr_div=100, pct_start=0.25)
    optimizer = build_optimizer(net, settings)
    assert isinstance(optimizer, torch.optim.AdamW)
    scheduler = build_scheduler(optimizer, settings, total_steps=100)
    history = []
    for _ in range(100):
        optimizer.step()
        scheduler.step()
        history.append([g["lr"] for g in optimizer.param_groups])
    peak = max(range(100), key=lambda i: history[i][-1])
    assert 20 <= peak <= 26
    assert history[peak][-1] == pytest.approx(1e-2, rel=0.01)
    assert history[peak][0] == pytest.approx(1e-4, rel=0.01)
    assert history[-1][-1] < 1e-5


def test_sgd_and_bad_settings():
    net = ConvNet(3, widths=(8, 16))
    assert isinstance(build_optimizer(net, OptimSettings(optimizer="sgd", momentum=0.9)), torch.optim.SGD)
    with pytest.raises(ConfigError, match="trainer.optimizer='lion'.*adamw"):
        OptimSettings(optimizer="lion")
    with pytest.raises(ConfigError, match="lr_div must be at least 1"):
        OptimSettings(lr_div=0.5)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 7])
def test_one_cycle_survives_very_short_runs(steps):
    """OneCycleLR divides by each phase's length: a 1-, 2- or 3-step run (a smoke test) must warm
    up, peak at the rate asked and come down, every rate finite, instead of dividing by zero."""
    import math

    net = ConvNet(3, widths=(8, 16))
    settings = OptimSettings(lr=1e-2)
    optimizer = build_optimizer(net, settings)
    scheduler = build_scheduler(optimizer, settings, total_steps=steps)
    head = optimizer.param_groups[-1]
    rates = [head["lr"]]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        rates.append(head["lr"])
    assert all(math.isfinite(r) and r > 0 for r in rates), rates
    assert rates[0] == pytest.approx(settings.lr / settings.div_factor)  # it starts warming up from lr / div_factor
    assert max(rates) <= settings.lr * (1 + 1e-6)  # and never overshoots the peak
    if steps >= 2:
        assert max(rates) > rates[0]  # it does warm up


def test_one_cycle_keeps_a_long_warm_up_as_asked():
    """fastai's frozen phase warms up for 99% of its steps: the peak must come at the end, not halfway."""
    net = ConvNet(3, widths=(8, 16))
    settings = OptimSettings(lr=1e-2, pct_start=0.99)
    optimizer = build_optimizer(net, settings)
    scheduler = build_scheduler(optimizer, settings, total_steps=100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[-1]["lr"])
        optimizer.step()
        scheduler.step()
    assert max(range(100), key=rates.__getitem__) >= 97
    assert rates[0] == pytest.approx(1e-2 / 25)


def test_body_head_spread_puts_every_body_group_at_lr_over_lr_div():
    assert group_rates(1e-3, 100, 4, "body_head") == pytest.approx([1e-5, 1e-5, 1e-5, 1e-3])
    net = ConvNet(3, widths=(8, 16, 32))
    groups = param_groups(net, OptimSettings(lr=1e-3, lr_div=100, lr_spread="body_head"))
    assert [g["lr"] for g in groups] == pytest.approx([1e-5] * (len(groups) - 1) + [1e-3])
    with pytest.raises(ConfigError, match="trainer.lr_spread='steps' is not known"):
        OptimSettings(lr_spread="steps")


@pytest.mark.gpu
def test_adamw_runs_fused_on_the_gpu_and_not_on_the_cpu():
    """One kernel for every tensor where all parameters are on a CUDA device; the foreach path on the CPU."""
    net = ConvNet(3)
    settings = OptimSettings(lr=1e-3)
    assert not build_optimizer(net, settings).defaults.get("fused")
    fused = build_optimizer(net.cuda(), settings)
    assert fused.defaults.get("fused") is True
    net(torch.zeros(2, 3, 32, 32, device="cuda")).sum().backward()
    fused.step()  # the fused kernel takes every group's parameters
