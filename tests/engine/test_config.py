"""Every config in the tree composes and instantiates; bad values get clear messages."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from fishbear.core.errors import ConfigError, locate
from fishbear.engine.config import check_node, instantiate
from fishbear.engine.experiment import task_kind
from fishbear.engine.settings import TrainerSettings
from fishbear.kinds import get_kind
from tests.conftest import CONF_DIR, TINY, compose_train


def _choices(group):
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


# data that comes in sequences or groups: their defaults must not split at random
SEQUENCES = {"frames": "time", "fish_boxes": "time", "fish_counts": "time", "camvid": "group", "biwi": "group"}


@pytest.mark.parametrize("trainer", _choices("trainer"))
def test_trainer_configs_compose_and_are_read_once_into_typed_settings(trainer, tmp_path):
    cfg = compose_train([f"trainer={trainer}"], tmp_path)
    settings = TrainerSettings.from_config(cfg.trainer)
    assert "lr" not in settings.lightning and settings.optim.lr > 0
    check_node(settings.lightning, "trainer")
    if trainer == "gpu":
        assert settings.channels_last and settings.lightning.accelerator == "gpu"
    if trainer == "cpu":
        assert settings.channels_last and settings.lightning.precision == "32-true"
    assert settings.task_args() == {"optim": settings.optim, "channels_last": settings.channels_last,
                                    "compile_network": settings.compile}


@pytest.mark.parametrize("data", _choices("data"))
def test_data_configs_compose_with_their_task(data, tmp_path):
    needs = {"folder": ["data.root=/somewhere"], "name_regex": ["data.root=/somewhere", "data.reader.pattern=x"],
             "points_csv": ["data.root=/somewhere"], "boxes": ["data.root=/somewhere"],
             "values_csv": ["data.root=/somewhere"], "box_counts": ["data.root=/somewhere"]}
    overrides = [f"data={data}", *needs.get(data, [])]
    cfg = compose_train(overrides, tmp_path)
    kind = task_kind(cfg)
    assert kind.task_class() is locate(cfg.task._target_)  # the task config trains the kind it names
    assert "kind" not in cfg.data  # the kind is named once: by the task the data config chooses
    check_node(cfg.data, "data", skip={"kind"})


@pytest.mark.parametrize("data", sorted(SEQUENCES))
def test_video_sequence_and_person_data_do_not_split_at_random_by_default(data, tmp_path):
    cfg = compose_train([f"data={data}"], tmp_path)
    assert cfg.data.split == SEQUENCES[data]
    assert cfg.data.group_pattern if SEQUENCES[data] == "group" else cfg.data.order_pattern


@pytest.mark.parametrize("reader", ["voc", "via", "vott_csv", "vott_json", "cntk", "coco", "yolo", "cvat"])
def test_every_box_reader_composes_into_a_box_dataset(reader, tmp_path):
    cfg = compose_train(["data=boxes", "data.root=/somewhere", f"data/reader={reader}"], tmp_path)
    assert task_kind(cfg) is get_kind("detect") and locate(cfg.task._target_) is get_kind("detect").task_class()
    check_node(cfg.data, "data", skip={"kind"})


def test_callbacks_and_logger_instantiate(tmp_path):
    """Every node builds; a recipe left off (``callbacks.ema.decay: null``) builds as nothing."""
    cfg = compose_train(TINY, tmp_path)
    for name, node in {**cfg.callbacks, **cfg.logger}.items():
        assert (instantiate(node, name) is None) == (name == "ema"), name
    switched = compose_train([*TINY, "callbacks.ema.decay=0.99"], tmp_path)
    assert instantiate(switched.callbacks.ema, "ema") is not None


def test_unknown_key_is_refused_by_hydra():
    with pytest.raises(ConfigCompositionException, match="trainer.foo"):
        compose_train(["trainer.foo=1"])


def test_unknown_choice_lists_the_valid_ones():
    with pytest.raises(Exception, match=r"(?s)Could not find 'model/nope'.*convnet.*resnet18"):
        compose_train(["model=nope"])


def test_wrong_type_names_key_value_and_expected_type(tmp_path):
    cfg = compose_train(["trainer.max_epochs=abc"], tmp_path)
    lightning_part = TrainerSettings.from_config(cfg.trainer).lightning
    with pytest.raises(ConfigError, match=r"trainer.max_epochs='abc' has the wrong type: Trainer expects Optional\[int\]"):
        check_node(lightning_part, "trainer")
    with pytest.raises(ConfigError, match=r"trainer.lr='fast' has the wrong type"):
        TrainerSettings.from_config(compose_train(["trainer.lr=fast"], tmp_path).trainer)


def test_unknown_argument_of_a_target():
    node = OmegaConf.create({"_target_": "fishbear.models.simple.ConvNet", "widht": [8]})
    with pytest.raises(ConfigError, match="ConvNet takes no argument 'widht'. Valid keys: num_classes, widths"):
        check_node(node, "model")
