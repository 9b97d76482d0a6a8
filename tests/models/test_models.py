"""A checkpoint is data, not code: opening one, rebuilding its network, sorting frames by its
class names and resuming a run folder run nothing the files name."""

from __future__ import annotations

import pytest
import torch
import yaml
from hydra.utils import instantiate

from fishbear.models import NETWORK_BUILDERS
from fishbear.models.base import Network
from fishbear.models.simple import MLP, ConvNet
from tests.conftest import CONF_DIR, compose_train

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


EXPECTED_GROUPS = {
    "convnet": ["stem", "stage1", "stage2", "stage3", "stage4", "classifier"],
    "mlp": ["hidden1", "hidden2", "classifier"],
    "resnet18": ["stem", "stage1", "stage2", "stage3", "stage4", "classifier"],
    "vgg16": ["block1", "block2", "block3", "block4", "block5", "classifier"],
    "unet": ["encoder", "decoder", "head"],
}


def test_every_model_config_names_a_registered_builder():
    targets = {yaml.safe_load(p.read_text())["_target_"] for p in (CONF_DIR / "model").glob("*.yaml")}
    assert targets <= NETWORK_BUILDERS


@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_builds_groups_and_runs_at_two_sizes(name):
    sizes = (32, 64) if name != "mlp" else (48,)
    detector = name.startswith("fasterrcnn")
    for size in sizes:
        # detectors' COCO weights are not here offline (tests/kinds/test_detect.py loads a local copy)
        cfg = compose_train([f"model={name}", f"data.image_size={size}", *(["model.pretrained=false"] if detector else [])])
        network = instantiate(cfg.model, num_classes=5)
        assert isinstance(network, Network)
        network.eval()
        with torch.no_grad():
            out = network(torch.randn(2, 3, size, size))
        if network.output == "boxes":  # scored boxes per image
            assert len(out) == 2 and out[0]["boxes"].shape[1:] == (4,)
        else:  # a vector per image, or a score map at input resolution (U-Net)
            assert out.shape == ((2, 5) if network.output == "vector" else (2, 5, size, size))
    groups = network.layer_groups()
    if name in EXPECTED_GROUPS:
        assert list(groups) == EXPECTED_GROUPS[name]
    assert list(groups)[-1] in ("classifier", "head", "roi_heads")
    grouped = {id(p) for g in groups.values() for p in g.parameters()}
    assert grouped == {id(p) for p in network.parameters()}, "a parameter outside every layer group"


def test_mlp_input_layer_follows_the_data_image_size():
    cfg = compose_train(["model=mlp", "data.image_size=24"])
    network = instantiate(cfg.model, num_classes=3)
    assert network.hidden1[1].in_features == 3 * 24 * 24
    with pytest.raises(ValueError, match="set model.image_size"):
        network(torch.randn(2, 3, 32, 32))


def test_convnet_head_styles_and_any_input_size():
    for head in ("max", "linear", "fastai"):
        net = ConvNet(num_classes=4, widths=(8, 16, 32), head=head).eval()
        for size in (20, 37, 96):
            assert net(torch.randn(2, 3, size, size)).shape == (2, 4)


def test_resnet_uses_torchvision_modules_for_pretrained_loading():
    cfg = compose_train(["model=resnet18"])
    net = instantiate(cfg.model, num_classes=2)
    assert net.pretrained_cfg.arch == "resnet18" and net.pretrained_cfg.weights is None
    assert net.stem.conv1.weight.shape == (64, 3, 7, 7)
    assert isinstance(MLP(2, 8), Network)
