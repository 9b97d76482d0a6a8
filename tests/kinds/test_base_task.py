"""What the speed work changed keeps the figures: training metrics updated in batches of steps
equal per-step updates, the logged training loss is the batch-weighted mean, compiling keeps
checkpoint names, the decode cache gives the decoded pixels, and a CPU run plans its cores."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TINY, compose_train


@pytest.mark.slow  # importing torch's compiler stack alone takes seconds
def test_compiling_keeps_the_network_s_parameter_names(tmp_path):
    from fishbear.engine.experiment import build_experiment
    from fishbear.engine.settings import TrainerSettings

    cfg = compose_train([*TINY, "trainer.compile=true"], tmp_path)
    _, task = build_experiment(cfg, TrainerSettings.from_config(cfg.trainer))
    names = list(task.state_dict())
    task.configure_model()  # compiling is lazy: nothing is compiled until the first call
    assert task.network._compiled_call_impl is not None
    assert list(task.state_dict()) == names


@pytest.mark.slow
def test_a_compiled_run_compiles_its_graphs_once_and_its_checkpoint_loads_without(tmp_path):
    """trainer.compile=true: one graph for training, one for evaluation whatever the batch size
    (marked dynamic; testing under no_grad as validation is), and one more only for an evaluation
    batch of a single picture (torch specialises sizes 0 and 1); the best checkpoint loads into
    the plain network."""
    from torch._dynamo.utils import counters

    from fishbear.engine.inference import Predictor
    from fishbear.train import train
    from tests.conftest import TINY, compose_train

    before = int(counters["stats"]["unique_graphs"])
    overrides = [o for o in TINY if not o.startswith("trainer.max_epochs")]
    train(compose_train([*overrides, "trainer.max_epochs=2", "trainer.compile=true", "data.batch_size=5", "logger=none"],
                        tmp_path / "run"))  # valid 12 = 5 + 5 + 2, test 16 = 5 + 5 + 5 + 1
    assert int(counters["stats"]["unique_graphs"]) - before <= 3
    predictor = Predictor.from_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt")
    assert not hasattr(predictor.network, "_orig_mod") and predictor.predict_batch([np.zeros((32, 32, 3), np.uint8)])
