from __future__ import annotations

import json

from fishbear.lr_find import lr_find
from tests.conftest import TINY, compose_train


def _trainable_groups_during_the_range_test(cfg, monkeypatch) -> dict[str, bool]:
    """Which layer groups have trainable weights (batch norm aside) while the Tuner runs."""
    from lightning.pytorch.tuner import Tuner
    from torch import nn

    seen: dict[str, bool] = {}
    original = Tuner.lr_find

    def spy(self, model, **kwargs):
        for name, group in model.network.layer_groups().items():
            weights = [p for m in group.modules() if not isinstance(m, nn.modules.batchnorm._BatchNorm)
                       for p in m.parameters(recurse=False)]
            seen[name] = any(p.requires_grad for p in weights)
        return original(self, model, **kwargs)

    monkeypatch.setattr(Tuner, "lr_find", spy)
    lr_find(cfg)
    return seen


def test_lr_find_suggests_a_rate_in_range_and_saves_the_plot(tmp_path):
    cfg = compose_train([*TINY, "num_training=30", "min_lr=1e-6", "max_lr=1"], tmp_path, config_name="lr_find")
    result = lr_find(cfg)
    assert 1e-6 <= result["steepest"] <= 1
    lrs = result["lr"]
    assert lrs[10] / 10 <= result["minimum_over_10"] <= lrs[-6] / 10  # the minimum of the settled part
    assert len(result["lr"]) >= 10 and result["lr"] == sorted(result["lr"])
    assert (tmp_path / "lr_find.png").stat().st_size > 5000
    assert json.loads((tmp_path / "lr_find.json").read_text())["steepest"] == result["steepest"]


def test_lr_find_freezes_the_body_with_finetune(tmp_path, monkeypatch):
    frozen = compose_train([*TINY, "num_training=10", "callbacks=finetune"], tmp_path / "a", config_name="lr_find")
    trainable = _trainable_groups_during_the_range_test(frozen, monkeypatch)
    assert trainable["classifier"] and not any(v for name, v in trainable.items() if name != "classifier"), trainable
    plain = compose_train([*TINY, "num_training=10"], tmp_path / "b", config_name="lr_find")
    assert all(_trainable_groups_during_the_range_test(plain, monkeypatch).values())
