"""Test-time augmentation by mirroring (``predict tta=true``, ``evaluate tta=true``): the network
run on the picture and on its mirror image, the second answer mirrored back and the two merged by
the kind (:meth:`Kind.unmirror`, :meth:`Kind.merge_views`).

One module around the network, so every reader of outputs (the predictor, the test loop's losses
and metrics) reads the merged answer as it reads any other; it costs a second forward pass.
Boxes are mirrored back and the two views' boxes fused (weighted box fusion). What a mirror changes
in a way that cannot be undone (several named points: a left eye becomes a right one) is refused in
one line (:meth:`Kind.mirror_refusal`).
"""

from __future__ import annotations

from typing import Any

import torch

from fishbear.core.errors import ConfigError


class MirrorAveraged(torch.nn.Module):
    """``network``'s answer merged with its mirrored-back answer on the mirrored input."""

    def __init__(self, network: torch.nn.Module, kind: Any, meta: Any) -> None:
        why = kind.mirror_refusal(meta)
        if why:
            raise ConfigError(why)
        super().__init__()
        self.network = network
        self.kind = kind

    def forward(self, x: torch.Tensor) -> Any:
        return self.kind.merge_views(self.network(x), self.kind.unmirror(self.network(x.flip(-1)), x.shape[-1]))

    def __getattr__(self, name: str) -> Any:  # the network's own attributes (layer groups, settings) read through
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["network"], name)
