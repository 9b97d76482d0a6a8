"""fine_tune: what is frozen stays put, BN and head learn, rates restart per phase."""

import lightning as L
import pytest
import torch

from fishbear.models.simple import ConvNet
from fishbear.train import train

from .conftest import TINY, compose_train


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


def test_fine_tune_freezes_then_unfreezes_with_restarted_discriminative_rates(tmp_path):
    cfg = compose_train(TINY + ["callbacks=finetune", "trainer.max_epochs=3", "trainer.lr=1e-2", "trainer.lr_div=100",
                                "logger=none", "+callbacks.probe._target_=tests.test_finetune.make_probe"], tmp_path)
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

    from fishbear.callbacks.finetune import FineTune

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
