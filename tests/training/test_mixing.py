"""``task.mixup`` / ``task.cutmix``: training batches mixed with themselves reversed, on the device,
the targets by the pixels' shares, with nothing read back to the host; refused for kinds whose
targets are not shares; a run trains with them."""

from __future__ import annotations

import random
import sys

import pytest
import torch

from fishbear.core.errors import ConfigError
from fishbear.training.mixing import Mixing
from tests.conftest import REPO, TINY, compose_train

sys.path.insert(0, str(REPO / "benchmarks"))
from sync_count import SyncCounter  # noqa: E402


def _batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(n, 3, 16, 20), torch.nn.functional.one_hot(torch.arange(n), n).float()


def test_mixup_blends_pictures_and_targets_by_one_share():
    images, targets = _batch()
    mixed, soft = Mixing(mixup=0.8)(images, targets)
    lam = soft[0, 0]
    assert 0 < lam < 1 and torch.allclose(soft.sum(1), torch.ones(4))
    assert torch.allclose(mixed, lam * images + (1 - lam) * images.flip(0), atol=1e-6)
    assert torch.allclose(soft[0, 3], 1 - lam)  # the picture it was mixed with: the batch reversed


def test_cutmix_pastes_a_box_and_the_targets_follow_its_share_of_pixels():
    images, targets = _batch()
    random.seed(1)
    for _ in range(5):
        mixed, soft = Mixing(cutmix=1.0)(images, targets)
        pasted = (mixed != images).any(dim=1)  # N x H x W: pixels from the other picture
        assert torch.equal(mixed[pasted.unsqueeze(1).expand_as(mixed)], images.flip(0)[pasted.unsqueeze(1).expand_as(mixed)])
        share = pasted[0].float().mean()
        assert soft[0, 0] == pytest.approx(1 - float(share), abs=1e-6)


def test_mixing_reads_nothing_back_to_the_host():
    images, targets = _batch()
    mixing = Mixing(mixup=0.8, cutmix=1.0)
    with SyncCounter() as counter:
        counter.armed = True
        for _ in range(6):
            mixing(images, targets)
    assert sum(counter.count.values()) == 0, counter.count


@pytest.mark.slow
def test_a_run_trains_with_mixup_and_cutmix_and_other_kinds_refuse_them(tmp_path):
    from fishbear.train import train

    report = train(compose_train([*TINY, "logger=none", "task.mixup=0.8", "task.cutmix=1.0"], tmp_path / "run"))
    assert report["metrics"]["test/loss"] > 0
    report = train(compose_train([*TINY, "logger=none", "data=shapes_tags", "data.image_size=32", "task.mixup=0.4"],
                                 tmp_path / "tags"))
    assert report["metrics"]["test/loss"] > 0
    with pytest.raises(ConfigError, match="not a share to mix"):
        train(compose_train([*TINY, "logger=none", "data=shapes_counts", "+task.mixup=0.4"], tmp_path / "counts"))
    with pytest.raises(ConfigError, match="alphas of 0"):
        Mixing(mixup=-1)
