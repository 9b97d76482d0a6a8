"""What a trained network sees in a picture just before it answers: the inputs of its last layer.

``adapt``'s ``pseudo`` refits that layer on them; ``review``'s queue of unlabelled pictures
measures how alike two pictures are by them (two frames of one fish's visit are close there even
when their pixels differ).
"""

from __future__ import annotations

from typing import Any

import torch

from fishbear.core.errors import DataError


def last_layer(network: torch.nn.Module) -> torch.nn.Module | None:
    """The network's last linear or convolution layer, in the order the modules were built."""
    layers = [m for m in network.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    return layers[-1] if layers else None


@torch.no_grad()
def layer_inputs(network: torch.nn.Module, layer: torch.nn.Module, batches: Any,
                 refusal: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs of ``layer`` and the network's outputs over ``batches`` (eval mode). ``refusal``
    (one line) when the layer's output is not the network's answer: then its inputs are not what
    the answer is read from."""
    inputs: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    seen: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda _m, args, out: seen.update(input=args[0], output=out))
    network.eval()
    try:
        for batch in batches:
            out = network(batch)
            if out.shape != seen["output"].shape or not torch.equal(out, seen["output"]):
                raise DataError(refusal)
            inputs.append(seen["input"].detach().float())
            outputs.append(out.detach().float())
    finally:
        handle.remove()
    return torch.cat(inputs), torch.cat(outputs)
