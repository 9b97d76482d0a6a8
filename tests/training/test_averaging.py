"""The weight-averaging recipes: ``callbacks.ema.decay`` (an EMA of the weights with timm's warm-up,
checkpointed and tested in place of the last weights) and ``callbacks.wise_ft.alpha`` (WiSE-FT: the
best checkpoint's body mixed with the pretrained one)."""

from __future__ import annotations

import pytest
import torch

from fishbear.core.errors import ConfigError
from fishbear.training.callbacks.averaging import EMA, WiseFT, body_state, ema
from tests.conftest import TINY, compose_train, use_torch_home


def test_the_ema_follows_timms_warm_up_then_its_decay():
    """Updates of a one-number model: the n-th average is ``r * avg + (1 - r) * w`` with
    ``r = min(decay, (1 + n) / (10 + n))``, computed on the device (no Python number read back)."""
    from torch.optim.swa_utils import AveragedModel

    model = torch.nn.Linear(1, 1, bias=False)
    callback = EMA(decay=0.5)
    averaged = AveragedModel(model, avg_fn=callback.average, use_buffers=True)
    expected = None
    for step, value in enumerate([1.0, 3.0, 5.0, 9.0, 2.0]):
        model.weight.data.fill_(value)
        averaged.update_parameters(model)
        if expected is None:
            expected = value  # the first update copies
        else:
            n = step  # updates before this one
            rate = min(0.5, (1 + n) / (10 + n))
            expected = rate * expected + (1 - rate) * value
        assert averaged.module.weight.item() == pytest.approx(expected, rel=1e-6)
    assert ema(None) is None and isinstance(ema(0.99), EMA)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        ema(1.5)


@pytest.mark.slow
def test_a_run_with_ema_tests_and_checkpoints_the_average(tmp_path):
    from fishbear.evaluate import evaluate
    from fishbear.train import train

    report = train(compose_train([*TINY, "logger=none", "trainer.max_epochs=2", "callbacks.ema.decay=0.9"], tmp_path))
    checkpoint = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    average, current = checkpoint["state_dict"], checkpoint["current_model_state"]
    key = "network.stem.0.weight"
    assert not torch.equal(average[key], current[key])  # the average is what predict and export read
    # and what the run's own test scored: evaluate reads the checkpoint's state_dict alone
    data = [o for o in TINY if o.startswith("data.")]
    again = evaluate(compose_train([f"ckpt={tmp_path / 'checkpoints' / 'best.ckpt'}", *data], tmp_path / "evaluate",
                                   config_name="evaluate"))
    assert again["metrics"]["test/loss"] == pytest.approx(report["metrics"]["test/loss"], rel=1e-4)


@pytest.mark.slow
def test_wise_ft_at_zero_gives_the_pretrained_body_with_the_trained_head(tmp_path, monkeypatch):
    """alpha=0: the tested checkpoint's body is exactly the pretrained weights (a locally made
    state dict under torchvision's file name); last.ckpt (for resuming) keeps the trained body."""
    import torchvision

    from fishbear.models.torchvision_nets import classifier
    from fishbear.train import train

    folder = use_torch_home(tmp_path / "torch", monkeypatch)
    torch.manual_seed(11)
    torch.save(torchvision.models.mobilenet_v2().state_dict(), folder / "mobilenet_v2-b0353104.pth")
    run = tmp_path / "run"
    train(compose_train([*TINY, "logger=none", "model=mobilenet_v2", "model.pretrained=true", "trainer.max_epochs=2",
                         "callbacks.wise_ft.alpha=0.0"], run))
    state = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    pretrained = body_state(classifier(num_classes=2, arch="mobilenet_v2", pretrained=True, weights="IMAGENET1K_V1"))
    floating = {k: v for k, v in pretrained.items() if v.is_floating_point()}
    assert floating and all(torch.equal(state[f"network.{k}"], v) for k, v in floating.items())
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert any(not torch.equal(state[k], last[k]) for k in (f"network.{name}" for name in floating))  # last: not mixed


def test_wise_ft_needs_pretrained_weights_and_a_share(tmp_path):
    from fishbear.train import train

    with pytest.raises(ConfigError, match="between 0 and 1"):
        WiseFT(alpha=2.0)
    with pytest.raises(ConfigError, match="model.pretrained=true"):
        train(compose_train([*TINY, "logger=none", "callbacks.wise_ft.alpha=0.5"], tmp_path))
