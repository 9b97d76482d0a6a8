"""``model=timm``: any timm architecture through fishbear's commands; its weights from a file or
from the hub (a stand-in on 127.0.0.1), and one error line offline. timm's ``test_*`` networks
(a few hundred thousand parameters, made for tests) keep these fast."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from fishbear.core.errors import ConfigError
from fishbear.training.optim import OptimSettings, param_groups
from tests.conftest import REPO, TINY, compose_train, run_cli
from tests.hub_standin import HubStandin

timm = pytest.importorskip("timm")

HUB_ID = "timm/test_convnext.r160_in1k"


def _reference(name: str = "test_convnext", seed: int = 0) -> torch.nn.Module:
    """timm's own network with seeded weights and its own classifier: what a weights file holds."""
    torch.manual_seed(seed)
    return timm.create_model(name).eval()


def _pre_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.forward_head(model.forward_features(x), pre_logits=True)


def _save_safetensors(model: torch.nn.Module, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_the_timm_config_builds_timms_groups_and_every_parameter_is_in_one():
    network = instantiate(compose_train(["model=timm", "model.name=test_convnext"]).model, num_classes=3)
    groups = network.group_parameters()
    assert list(groups)[0] == "stem" and list(groups)[-1] == "classifier" and len(groups) >= 4
    settings = OptimSettings(lr=1e-3)
    assert sum(len(g["params"]) for g in param_groups(network, settings)) == len(list(network.parameters()))
    assert network.pretrained_cfg.arch == "timm/test_convnext"
    assert network.pretrained_cfg.extra["input_size"] == (3, 160, 160)
    assert network(torch.randn(2, 3, 64, 64)).shape == (2, 3)


def test_freezing_holds_the_timm_body_and_trains_the_head():
    from fishbear.models.timm_nets import timm_classifier

    network = timm_classifier(2, "test_efficientnet")  # batch norms: they keep learning, as fastai's train_bn
    network.freeze()
    before = {name: p.detach().clone() for name, p in network.trunk.named_parameters()}
    optimizer = torch.optim.SGD([p for p in network.parameters() if p.requires_grad], lr=0.1)
    network.train()
    network.hold_frozen_bn()
    loss = torch.nn.functional.cross_entropy(network(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    optimizer.step()
    owners = dict(network.trunk.named_modules())
    changed = [n for n, p in network.trunk.named_parameters() if not torch.equal(p, before[n])]
    assert changed and all(isinstance(owners[n.rpartition(".")[0]], torch.nn.modules.batchnorm._BatchNorm) for n in changed)
    assert network.classifier[-1].weight.grad is not None


def test_a_timm_model_without_weights_trains_through_fishbear_train(tmp_path):
    from fishbear.engine.checkpoint import read_meta
    from fishbear.train import train

    report = train(compose_train([*TINY, "model=timm", "model.name=test_convnext", "logger=none"], tmp_path))
    assert report["metrics"]["test/loss"] > 0
    meta = read_meta(tmp_path / "checkpoints" / "best.ckpt")
    assert meta.model_cfg["name"] == "test_convnext"
    assert tuple(meta.mean) == (0.5, 0.5, 0.5)  # test_convnext's pretrained_cfg, not ImageNet's


@pytest.mark.slow
@pytest.mark.parametrize("data", ["shapes_tags", "shapes_points", "shapes_counts"])
def test_a_timm_model_trains_for_the_other_vector_kinds(data, tmp_path):
    from fishbear.train import train

    extra = ["+model.y_range=[-1.1,1.1]"] if data == "shapes_points" else []
    report = train(compose_train([*TINY, f"data={data}", "model=timm", "model.name=test_resnet", "logger=none", *extra],
                                 tmp_path))
    assert torch.isfinite(torch.tensor(report["metrics"]["test/loss"]))


def test_a_timm_encoder_under_the_unet_and_a_refusal_for_one_that_is_not_in_stages():
    from fishbear.core.errors import FishbearError
    from fishbear.models.unet import UNet

    net = UNet(num_classes=4, encoder="timm/test_resnet").eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 96)).shape == (1, 4, 64, 96)
    assert net.pretrained_cfg.arch == "timm/test_resnet"
    with pytest.raises(FishbearError, match="not as stages"):
        UNet(num_classes=4, encoder="timm/test_vit")


def test_a_timm_backbone_under_a_detector():
    from fishbear.models.detection import faster_rcnn_on

    detector = faster_rcnn_on(num_classes=2, backbone="timm/test_resnet", levels=3).eval()
    with torch.no_grad():
        (found,) = detector(torch.rand(1, 3, 96, 96))
    assert found["boxes"].shape[1:] == (4,)
    assert list(detector.layer_groups())[:2] == ["stem", "stage1"]


def test_weights_from_a_file_give_timms_own_features(tmp_path):
    from fishbear.models.timm_nets import timm_classifier

    reference = _reference()
    x = torch.randn(2, 3, 96, 96)
    for path in (_save_safetensors(reference, tmp_path / "model.safetensors"), tmp_path / "state.pth"):
        if path.suffix == ".pth":
            torch.save(reference.state_dict(), path)
        network = timm_classifier(2, "test_convnext", pretrained=True, weights=str(path)).eval()
        same_way = timm.create_model("test_convnext", pretrained=True, pretrained_cfg_overlay={"file": str(path)}).eval()
        with torch.no_grad():
            assert torch.allclose(_pre_logits(network.trunk, x), _pre_logits(reference, x), atol=1e-6)
            assert torch.allclose(same_way(x), reference(x), atol=1e-6)  # timm's logits from the same file
        assert network.pretrained_cfg.weights == str(path.resolve())


def test_a_weights_file_is_checked_before_anything_is_built(tmp_path):
    from fishbear.models.timm_nets import timm_classifier

    with pytest.raises(ConfigError, match="model.pretrained=true"):
        timm_classifier(2, "test_convnext", weights=str(tmp_path / "x.safetensors"))
    with pytest.raises(ConfigError, match="no such file"):
        timm_classifier(2, "test_convnext", pretrained=True, weights=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ConfigError, match="convnext_tiny"):
        timm_classifier(2, "convnext_tiyn")


def test_weights_from_the_hub_through_timms_own_loading_and_cache(tmp_path):
    """``HF_ENDPOINT`` at a stand-in hub serving a real safetensors file: timm and huggingface_hub
    fetch and cache it; a second build reads the cache (no second download)."""
    reference = _reference(seed=4)
    hub = HubStandin({f"{HUB_ID}/model.safetensors": _save_safetensors(reference, tmp_path / "m.safetensors").read_bytes()})
    hub.start()
    try:
        code = ("import torch\nfrom fishbear.models.timm_nets import timm_classifier\n"
                "for _ in range(2):\n    net = timm_classifier(2, 'test_convnext', pretrained=True)\n"
                f"torch.save(net.trunk.state_dict(), {str(tmp_path / 'got.pt')!r})\nprint(net.pretrained_cfg.weights)\n")
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1"}
        result = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        hub.stop()
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == HUB_ID
    assert hub.requests[f"GET {HUB_ID}/resolve/main/model.safetensors"] == 1
    got = torch.load(tmp_path / "got.pt")
    trunk = timm.create_model("test_convnext", num_classes=0)
    trunk.load_state_dict(reference.state_dict(), strict=False)
    assert all(torch.equal(got[k], v) for k, v in trunk.state_dict().items())
    assert list((tmp_path / "hf" / "hub").glob("models--timm--test_convnext.r160_in1k/snapshots/*/model.safetensors"))


def test_offline_the_train_command_names_the_file_the_cache_and_the_override(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: as offline
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = run_cli(["-m", "fishbear.train", *TINY, "model=timm", "model.name=test_convnext", "model.pretrained=true",
                      "logger=none", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr[-2000:]
    assert f"127.0.0.1:9/{HUB_ID}/resolve/main/model.safetensors" in lines[0]
    assert "model.weights=" in lines[0] and str(tmp_path / "hf") in lines[0]


@pytest.mark.slow
def test_a_checkpoint_rebuilds_without_its_weights_file(tmp_path):
    """The trained weights are in the checkpoint: predicting needs neither the hub nor the file."""
    from fishbear.engine.checkpoint import build_network, read_meta
    from fishbear.train import train

    weights = _save_safetensors(_reference(), tmp_path / "model.safetensors")
    run = tmp_path / "run"
    train(compose_train([*TINY, "model=timm", "model.name=test_convnext", "model.pretrained=true",
                         f"model.weights={weights}", "logger=none"], run))
    weights.unlink()
    network = build_network(read_meta(run / "checkpoints" / "best.ckpt"))
    assert network.pretrained_cfg.weights is None


def test_the_error_for_a_size_a_vit_cannot_take_names_its_own(tmp_path):
    from fishbear.train import train

    with pytest.raises(ConfigError, match="takes 224x224 pictures .* data.image_size=224"):
        train(compose_train([*TINY, "model=timm", "model.name=vit_tiny_patch16_224", "logger=none"], tmp_path))


@pytest.mark.slow
def test_a_timm_model_exports_with_parity(tmp_path):
    from fishbear.export import main as export
    from fishbear.train import train

    run = tmp_path / "run"
    train(compose_train([*TINY, "model=timm", "model.name=test_convnext", "logger=none"], run))
    report = export([f"ckpt={run / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'export'}"])
    assert report["passed"], report["failed"]
    assert report["decisions"]["same_decisions"] == 1.0
