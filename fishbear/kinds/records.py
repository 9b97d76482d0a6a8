"""A test's per-image records, from every batch (and every process), as one table."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def merge_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The records ordered by dataset index, each image once (a distributed sampler repeats some to
    even out the ranks). Tensor fields are concatenated, list fields (a detector's boxes per image) joined."""
    if not records:
        return {}
    index = torch.cat([r["index"] for r in records])
    _, first = np.unique(index.numpy(), return_index=True)  # sorted by index, each index once
    order = torch.as_tensor(first)
    merged: dict[str, Any] = {}
    for key in records[0]:
        if isinstance(records[0][key], torch.Tensor):
            merged[key] = torch.cat([r[key] for r in records])[order]
        else:
            flat = [item for r in records for item in r[key]]
            merged[key] = [flat[i] for i in order.tolist()]
    return merged
