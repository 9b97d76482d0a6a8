"""mixup and CutMix (Zhang et al. 2018; Yun et al. 2019), as timm's ``Mixup`` does them and on the
device: each training batch is mixed with itself reversed, the pictures by a share ``lam`` drawn
from Beta(alpha, alpha) (mixup: a blend; CutMix: a box of the other picture pasted in, ``lam`` the
share of pixels left), the targets by the same share. Nothing is read back to the host: ``lam``,
the box and the mask stay tensors; the choice between the two is the host's own random draw.
Kinds with a target a share can mix (a class, tags) take it: ``Kind.soft_target``."""

from __future__ import annotations

import random

import torch

from fishbear.core.errors import ConfigError


class Mixing:
    """``mixup`` / ``cutmix``: their Beta alphas (0: off; both on: one of the two per batch,
    CutMix with probability ``switch``)."""

    def __init__(self, mixup: float = 0.0, cutmix: float = 0.0, switch: float = 0.5) -> None:
        if mixup < 0 or cutmix < 0:
            raise ConfigError(f"task.mixup={mixup}, task.cutmix={cutmix}: give alphas of 0 (off) or more (timm: 0.8, 1.0)")
        self.mixup, self.cutmix, self.switch = float(mixup), float(cutmix), float(switch)

    @property
    def on(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``images`` N x C x H x W, ``targets`` N x K shares (one-hot classes, tags): both mixed."""
        use_cutmix = self.cutmix > 0 and (self.mixup == 0 or random.random() < self.switch)
        alpha = torch.tensor(self.cutmix if use_cutmix else self.mixup, device=images.device)
        lam = torch.distributions.Beta(alpha, alpha, validate_args=False).sample()  # no check: no sync
        other = images.flip(0)
        if use_cutmix:
            height, width = images.shape[-2:]
            cut = torch.sqrt(1.0 - lam)
            centre = torch.rand(2, device=images.device) * torch.tensor([height, width], device=images.device)
            half = cut * torch.tensor([height, width], device=images.device) / 2
            low, high = (centre - half).clamp(min=0), centre + half
            rows = torch.arange(height, device=images.device)[:, None]
            cols = torch.arange(width, device=images.device)[None, :]
            box = (rows >= low[0]) & (rows < high[0]) & (cols >= low[1]) & (cols < high[1])
            images = torch.where(box, other, images)
            lam = 1.0 - box.float().mean()  # the share the box left of each picture
        else:
            images = images * lam.to(images.dtype) + other * (1.0 - lam).to(images.dtype)
        return images, targets * lam + targets.flip(0) * (1.0 - lam)
