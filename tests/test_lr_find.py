import json

from fishbear.lr_find import lr_find

from .conftest import TINY, compose_train


def test_lr_find_suggests_a_rate_in_range_and_saves_the_plot(tmp_path):
    cfg = compose_train([*TINY, "num_training=30", "min_lr=1e-6", "max_lr=1"], tmp_path, config_name="lr_find")
    result = lr_find(cfg)
    assert 1e-6 <= result["steepest"] <= 1
    lrs = result["lr"]
    assert lrs[10] / 10 <= result["minimum_over_10"] <= lrs[-6] / 10  # the minimum of the settled part
    assert len(result["lr"]) >= 10 and result["lr"] == sorted(result["lr"])
    assert (tmp_path / "lr_find.png").stat().st_size > 5000
    assert json.loads((tmp_path / "lr_find.json").read_text())["steepest"] == result["steepest"]


def test_lr_find_freezes_the_body_with_finetune(tmp_path):
    cfg = compose_train([*TINY, "num_training=10", "callbacks=finetune"], tmp_path, config_name="lr_find")
    assert lr_find(cfg)["frozen"] is True
