"""What every fishbear network offers besides ``forward``: its layer groups and its origin.

Freezing, unfreezing, discriminative learning rates and batch-norm handling are written once
against :meth:`Network.layer_groups`, so they work for every model. Groups are named modules in
input-to-output order (``stem``, ``stage1`` ... ``head``), found by name, never by index.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

from fishbear.core.tensors import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class PretrainedCfg:
    """One source of truth per model (as timm's ``pretrained_cfg``): where its weights come from
    and the input statistics they expect; the data module normalises with these."""

    arch: str
    weights: str | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    extra: dict = field(default_factory=dict)


class Network(nn.Module):
    """A plain ``nn.Module`` whose children are its layer groups, in order, the last one the head."""

    pretrained_cfg: PretrainedCfg
    output: str = "vector"  # one vector per image; "dense": a score map at input resolution (U-Net)

    def layer_groups(self) -> OrderedDict[str, nn.Module]:
        return OrderedDict(self.named_children())

    def group_parameters(self) -> OrderedDict[str, list[tuple[nn.Module, nn.Parameter]]]:
        """Each group's parameters, each beside the module that owns it (so batch norms are found).
        Freezing and the optimiser's groups read this, not the modules: a network built elsewhere
        (a timm model) has its groups as sets of parameters, not as modules of its own."""
        return OrderedDict((name, [(module, param) for module in group.modules() for param in module.parameters(recurse=False)])
                           for name, group in self.layer_groups().items())

    def head(self) -> nn.Module:
        return next(reversed(self.layer_groups().values()))

    def body_groups(self) -> list[str]:
        """The groups that come from the backbone (pretrained when asked), first to last; the
        rest are new layers. Fine-tuning freezes these and ``lr_spread: body_head`` slows them.
        A classifier's body is everything but its head; a U-Net's is its encoder alone, since
        its decoder is as new as its head."""
        return list(self.layer_groups())[:-1]

    def freeze(self, train_bn: bool = True) -> list[str]:
        """Freeze the body, train the new layers (fastai's ``freeze``)."""
        return self.freeze_to(len(self.body_groups()), train_bn)

    def freeze_to(self, n: int, train_bn: bool = True) -> list[str]:
        """Freeze the first ``n`` groups (``-1``: all but the head, as fastai's ``freeze_to``).

        With ``train_bn`` the batch-norm layers of frozen groups keep learning their affine
        parameters and running statistics (fastai's default, which matters when the new data's
        statistics differ from ImageNet's); without it they are frozen and held in eval mode
        (see :meth:`hold_frozen_bn`). Returns the names of the frozen groups.
        """
        groups = self.group_parameters()
        cut = n % len(groups) if n < 0 else min(n, len(groups))
        frozen = list(groups)[:cut]
        for name, members in groups.items():
            is_frozen = name in frozen
            for module, param in members:
                param.requires_grad = not is_frozen or (train_bn and isinstance(module, nn.modules.batchnorm._BatchNorm))
        self._frozen_bn_eval = [] if train_bn else frozen
        self.hold_frozen_bn()
        return frozen

    def unfreeze(self) -> None:
        self.freeze_to(0)

    def hold_frozen_bn(self) -> None:
        """Put the batch-norm layers of frozen groups back in eval mode (``model.train()`` undoes it)."""
        groups = self.group_parameters()
        for name in getattr(self, "_frozen_bn_eval", []):
            for module, _ in groups[name]:
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for group in self.layer_groups().values():
            x = group(x)
        return x
