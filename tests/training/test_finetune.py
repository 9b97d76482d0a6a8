"""fine_tune: what is frozen stays put, BN and head learn, rates restart per phase."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from fishbear.models.simple import ConvNet
from fishbear.train import train
from tests.conftest import TINY, compose_train


class Probe(L.Callback):
    """Records weights at epoch ends and learning rates at every step."""

    def __init__(self) -> None:
        self.snapshots, self.rates, self.grad_flags = [], [], []

    def _snap(self, net):
        return {"stem_conv": net.stem[0].weight.detach().clone(), "stem_bn": net.stem[1].weight.detach().clone(),
                "stem_bn_mean": net.stem[1].running_mean.detach().clone(),
                "head": net.classifier[-1].weight.detach().clone()}

    def on_fit_start(self, trainer, pl_module):
        self.snapshots.append(self._snap(pl_module.network))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.rates.append((trainer.current_epoch, [g["lr"] for g in trainer.optimizers[0].param_groups]))

    def on_train_epoch_end(self, trainer, pl_module):
        self.snapshots.append(self._snap(pl_module.network))
        self.grad_flags.append(pl_module.network.stem[0].weight.requires_grad)


PROBE = None


def make_probe():
    global PROBE
    PROBE = Probe()
    return PROBE


SIZES: dict[int, tuple[int, int]] = {}


class RecordSizes(L.Callback):
    """The image size of each epoch's first training batch, into ``SIZES``."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            SIZES[trainer.current_epoch] = tuple(batch["image"].shape[-2:])


def test_fine_tune_freezes_then_unfreezes_with_restarted_discriminative_rates(tmp_path):
    cfg = compose_train(TINY + ["callbacks=finetune", "trainer.max_epochs=3", "trainer.lr=1e-2", "trainer.lr_div=100",
                                "logger=none", "+callbacks.probe._target_=tests.training.test_finetune.make_probe"], tmp_path)
    train(cfg)
    start, after_frozen, after_unfrozen, _ = PROBE.snapshots
    assert torch.equal(start["stem_conv"], after_frozen["stem_conv"]), "a frozen weight changed"
    assert not torch.equal(start["stem_bn"], after_frozen["stem_bn"]), "train_bn: BN affine should learn"
    assert not torch.equal(start["stem_bn_mean"], after_frozen["stem_bn_mean"]), "BN statistics should update"
    assert not torch.equal(start["head"], after_frozen["head"])
    assert not torch.equal(after_frozen["stem_conv"], after_unfrozen["stem_conv"]), "unfrozen body should learn"
    assert PROBE.grad_flags == [False, True, True]

    frozen = [r for e, r in PROBE.rates if e == 0]
    unfrozen = [r for e, r in PROBE.rates if e >= 1]
    assert all(len(set(r)) == 1 for r in frozen), "one rate for all groups while frozen"
    assert max(r[-1] for r in frozen) <= 1e-2 * 1.0001
    first = unfrozen[0]
    assert first[0] / first[-1] == pytest.approx(1 / 100), "first group at head / lr_div"
    assert first[-1] == pytest.approx(1e-2 * 0.5 / 5, rel=1e-3), "one-cycle restarts at lr / 5 (fine_tune's div)"
    assert frozen[0][-1] == pytest.approx(1e-2 / 25, rel=1e-3), "the frozen cycle starts at lr / div_factor"
    assert max(r[-1] for r in unfrozen) == pytest.approx(1e-2 * 0.5, rel=0.05)


def test_freeze_to_minus_two_and_frozen_bn_held_in_eval():
    net = ConvNet(3, widths=(8, 16, 32))
    frozen = net.freeze_to(-2, train_bn=False)
    assert frozen == ["stem", "stage1"]
    assert not any(p.requires_grad for p in net.stem.parameters())
    assert all(p.requires_grad for p in net.stage2.parameters())
    net.train()
    net.hold_frozen_bn()
    assert not net.stem[1].training and net.stage2[2].training
    before = net.stem[1].running_mean.clone()
    net(torch.randn(4, 3, 32, 32))
    assert torch.equal(before, net.stem[1].running_mean)
    net.unfreeze()
    assert all(p.requires_grad for p in net.parameters())


def test_fine_tune_is_the_default_for_pretrained_models_only():
    from hydra.utils import instantiate

    from fishbear.training.callbacks.finetune import FineTune

    def finetune_of(overrides):
        return instantiate(compose_train(overrides).callbacks.finetune)

    assert finetune_of(["model=mobilenet_v2", "model.pretrained=true"]).enabled
    assert not finetune_of(["model=mobilenet_v2"]).enabled
    assert not finetune_of([]).enabled  # convnet has no pretrained key at all
    assert finetune_of(["callbacks=finetune"]).enabled
    off = FineTune(enabled=False)
    net = ConvNet(3, widths=(8, 16))

    class Module:
        network = net

    off.on_train_epoch_start(None, Module())
    assert all(p.requires_grad for p in net.parameters())


def test_a_fine_tuned_classifier_starts_from_fastais_rates_and_a_typed_rate_wins():
    from fishbear.engine.settings import TrainerSettings

    def rates(overrides):
        optim = TrainerSettings.from_config(compose_train(overrides).trainer).optim
        return optim.lr, optim.lr_div, optim.lr_spread

    fastai = (2e-3, 100.0, "body_head")  # fine_tune(base_lr=2e-3, lr_mult=100) on a body | head split
    assert rates(["data=bears", "model=mobilenet_v2", "model.pretrained=true"]) == fastai
    assert rates(["model=mobilenet_v2", "callbacks=finetune"]) == fastai  # fine-tuning, however switched on
    assert rates(["model=mobilenet_v2"]) == (3e-3, 1.0, "geometric")  # from scratch
    # a kind without fine-tune rates (boxes: not measured with them) keeps trainer's own defaults
    assert rates(["data=shapes_boxes", "model=fasterrcnn_mobilenet"]) == (3e-3, 1.0, "geometric")
    typed = ["model=mobilenet_v2", "model.pretrained=true", "trainer.lr=1e-3", "trainer.lr_spread=geometric"]
    assert rates(typed) == (1e-3, 100.0, "geometric")
    assert rates(["model=mobilenet_v2", "model.pretrained=true", "trainer.fine_tune.classify.lr=5e-4"])[0] == 5e-4


def test_the_fine_tune_rates_stand_in_the_trainer_config_keyed_by_kind():
    """A reader of conf/trainer/default.yaml sees the rates; each key there names a kind."""
    import yaml

    from fishbear.conf import CONF_DIR
    from fishbear.kinds import KINDS

    rates = yaml.safe_load((CONF_DIR / "trainer" / "default.yaml").read_text())["fine_tune"]
    assert set(rates) <= set(KINDS) and rates["classify"] == {"lr": 2e-3, "lr_div": 100.0, "lr_spread": "body_head"}


def test_progressive_resize_switches_size_at_its_epoch_refreezes_and_restarts_the_cycle(tmp_path):
    import lightning as L

    from fishbear.train import train

    seen: dict[int, dict] = {}

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                seen[trainer.current_epoch] = {
                    "train": tuple(batch["image"].shape[-2:]),
                    "stem_frozen": not any(p.requires_grad for p in pl_module.network.stem[0].parameters()),
                    "head_lr": trainer.optimizers[0].param_groups[-1]["lr"],
                }

        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
            if batch_idx == 0 and trainer.current_epoch in seen:
                seen[trainer.current_epoch]["valid"] = tuple(batch["image"].shape[-2:])

    import fishbear.engine.experiment as experiment_module  # where the run's Trainer gets its callbacks

    original = experiment_module.instantiate_group
    experiment_module.instantiate_group = (
        lambda group, where: original(group, where) + ([Record()] if where == "callbacks" else []))
    try:
        report = train(compose_train([*TINY, "data.source.image_size=48", "callbacks=progressive_resize",
                                      "callbacks.finetune.schedule=[[0,32],[2,48]]", "trainer.max_epochs=4",
                                      "trainer.lr=1e-2", "logger=none"], tmp_path))
    finally:
        experiment_module.instantiate_group = original
    assert [seen[e]["train"] for e in range(4)] == [(32, 32), (32, 32), (48, 48), (48, 48)]
    assert [seen[e]["valid"] for e in range(4)] == [(32, 32), (32, 32), (48, 48), (48, 48)]
    # from scratch: no frozen start; at the new size the body is frozen again for one epoch
    assert [seen[e]["stem_frozen"] for e in range(4)] == [False, False, True, False]
    # each phase's one-cycle starts low again (lr / div_factor), not where the last one ended
    assert seen[2]["head_lr"] == pytest.approx(1e-2 * 0.5 / 25, rel=0.05)
    from fishbear.engine.checkpoint import load_checkpoint

    # a checkpoint carries the size its weights were trained at; the test runs at the best one's
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt").meta.image_size == 48
    best = load_checkpoint(report["best_checkpoint"]).meta.image_size
    assert report["data"]["image_size"] == best and report["epochs"] == 4


def test_unet_encoder_loads_pretrained_weights_and_is_the_only_frozen_part(tmp_path, monkeypatch):
    import torchvision

    from fishbear.models.unet import UNet
    from fishbear.training.optim import OptimSettings, param_groups

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(5)
    reference = torchvision.models.resnet18()
    filename = torchvision.models.ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / filename)
    net = UNet(num_classes=4, encoder="resnet18", pretrained=True)
    assert torch.equal(net.encoder.stem.conv1.weight, reference.conv1.weight)
    # the probe that sized the decoder ran in eval mode: pretrained statistics untouched
    assert torch.equal(net.encoder.stage1[0].bn1.running_mean, reference.layer1[0].bn1.running_mean)
    assert net.freeze(train_bn=False) == ["encoder"]
    assert not any(p.requires_grad for p in net.encoder.parameters())
    assert all(p.requires_grad for p in net.decoder.parameters())
    rates = {g["name"]: g["lr"] for g in param_groups(net, OptimSettings(lr=1e-3, lr_div=100, lr_spread="body_head"))}
    assert rates == pytest.approx({"encoder": 1e-5, "decoder": 1e-3, "head": 1e-3})


def test_a_resumed_progressive_run_continues_at_the_size_of_its_epoch(tmp_path, monkeypatch):
    from tests.crashes import killed

    overrides = [*TINY, "data.source.image_size=48", "callbacks=progressive_resize",
                 "callbacks.finetune.schedule=[[0,32],[2,48]]",
                 "trainer.max_epochs=3", "logger=none", "+callbacks.record._target_=tests.training.test_finetune.RecordSizes",
                 "+callbacks.crash._target_=tests.crashes.CrashAtEpoch", "+callbacks.crash.epoch=2"]
    SIZES.clear()
    killed(lambda: train(compose_train(overrides, tmp_path)), monkeypatch)
    assert SIZES == {0: (32, 32), 1: (32, 32)}
    SIZES.clear()
    train(compose_train(overrides + ["ckpt_path=last"], tmp_path))  # what --resume runs
    assert SIZES == {2: (48, 48)}
