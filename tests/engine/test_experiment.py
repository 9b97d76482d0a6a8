"""A checkpoint is data, not code: opening one, rebuilding its network, sorting frames by its
class names and resuming a run folder run nothing the files name."""

from __future__ import annotations

import pytest
import torch

from fishbear.core.runtime import cpu_training_workers
from tests.conftest import TINY, compose_train


@pytest.mark.parametrize("override, message", [
    ("trainer.max_epochs=0", r"trainer.max_epochs=0: a run trains for 1 epoch or more"),
    ("trainer.max_epochs=-3", r"trainer.max_epochs=-3: a run trains for 1 epoch or more"),
    ("data.batch_size=0", r"data.batch_size=0: it must be a whole number of 1 or more"),
    ("data.image_size=0", r"data.image_size=0: it must be a whole number of 1 or more"),
    ("data.image_size=7", r"data.image_size=7 is too small for this network \(model=convnet\): it needs at least \d+ px"),
    # each was a traceback (issue: "a wrong run is refused, not reported")
    ("data.valid_pct=0", r"data.valid_pct=0: the share of train held out for validation .* above 0 and below 1"),
    ("data.valid_pct=1", r"data.valid_pct=1: the share of train held out"),
    ("data.valid_pct=1.5", r"data.valid_pct=1.5: the share of train held out"),
    ("data.image_size=[64,64,3]", r"data.image_size=\[64, 64, 3\]: give one side .* or \[height, width\]"),
    ("data.image_size=[64]", r"data.image_size=\[64\]: give one side \(data.image_size=224\) or \[height, width\]"),
    ("seed=-1", r"seed=-1: give a whole number from 0 to 4294967295"),
    ("data.num_workers=-2", r"data.num_workers=-2: give 0 \(load in the main process\) or more"),
    ("optimized_metric=test/acc", r"optimized_metric=test/acc: a sweep or search chooses by validation"),
])
def test_impossible_settings_are_refused_before_any_training(override, message, tmp_path):
    from fishbear.core.errors import ConfigError
    from fishbear.train import train
    from tests.conftest import compose_train

    with pytest.raises(ConfigError, match=message):
        train(compose_train([*TINY, "logger=none", override], tmp_path))
    assert not (tmp_path / "checkpoints").exists()


def test_a_cpu_run_loads_in_the_main_process_below_8_cores_and_gives_the_model_the_rest():
    from fishbear.core.runtime import available_cores
    from fishbear.engine.experiment import _cpu_plan

    assert [cpu_training_workers(c) for c in (1, 2, 4, 7, 8, 16, 64)] == [0, 0, 0, 0, 1, 2, 8]
    threads = torch.get_num_threads()
    try:
        workers = cpu_training_workers(available_cores())
        assert _cpu_plan(compose_train(["trainer.accelerator=cpu"])) == {"num_workers": workers}
        assert torch.get_num_threads() <= max(1, available_cores() - workers)
        assert _cpu_plan(compose_train(["trainer.accelerator=cpu", "data.num_workers=1"])) == {}  # given: kept
        assert torch.get_num_threads() <= max(1, available_cores() - 1)
    finally:
        torch.set_num_threads(threads)
