"""A checkpoint is data, not code: opening one, rebuilding its network, sorting frames by its
class names and resuming a run folder run nothing the files name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fishbear.core.errors import CheckpointError
from fishbear.engine.checkpoint import load_checkpoint, network_from_checkpoint
from tests.conftest import tampered_checkpoint


class _Payload:
    """What a hostile pickle carries: unpickling it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))




def test_a_pickled_payload_in_a_checkpoint_is_refused_not_run(trained_run, tmp_path):
    marker = tmp_path / "payload-ran"
    path = tampered_checkpoint(trained_run, tmp_path, lambda c: c["fishbear"].update(note=_Payload(marker)))
    with pytest.raises(CheckpointError, match="cannot be read as a checkpoint of tensors and plain data"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("model_cfg", [
    {"_target_": "shutil.copyfile", "src": "/etc/hostname", "dst": "copied"},
    {"_target_": "fishbear.models.simple.ConvNet", "widths": {"_target_": "shutil.copyfile", "src": "/etc/hostname",
                                                              "dst": "copied"}},
    {"_target_": "fishbear.models.simple.ConvNet", "_args_": ["x"]},
])
def test_a_checkpoint_builds_only_fishbears_networks_from_plain_settings(trained_run, tmp_path, monkeypatch, model_cfg):
    monkeypatch.chdir(tmp_path)
    path = tampered_checkpoint(trained_run, tmp_path, lambda c: c["fishbear"].update(model_cfg=model_cfg))
    with pytest.raises(CheckpointError, match="not one of fishbear's networks|not a model setting"):
        network_from_checkpoint(load_checkpoint(path))
    assert not (tmp_path / "copied").exists()
