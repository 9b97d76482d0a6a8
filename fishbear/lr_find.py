"""``python -m fishbear.lr_find [overrides]``: fastai's ``lr_find`` with Lightning's Tuner.

Trains for ``num_training`` steps while the rate grows exponentially from ``min_lr`` to
``max_lr``, then saves ``lr_find.png`` (loss against rate, suggestions marked) and
``lr_find.json``, and prints two suggestions: the steepest descent (Lightning's) and a tenth of
the rate at the lowest loss (fastai's ``minimum/10``). When fine-tuning (pretrained, or ``callbacks=finetune``) the body is
frozen as it will be in the first phase, since that is the phase whose rate is being chosen.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

# importing fishbear.engine.config registers its resolvers before Hydra composes
from fishbear.engine.commandline import route_library_logs_to_root, run_hydra_main, user_errors_exit
from fishbear.engine.config import instantiate


def lr_find(cfg: DictConfig) -> dict[str, Any]:
    import lightning as L
    from lightning.pytorch.tuner import Tuner

    from fishbear.core.atomic import atomic_write_json
    from fishbear.engine.experiment import build_experiment, check_config
    from fishbear.engine.settings import TrainerSettings
    from fishbear.reports.plots import save_figure
    from fishbear.training.callbacks.finetune import freeze

    route_library_logs_to_root()
    run_dir = Path(cfg.paths.output_dir)
    settings = TrainerSettings.from_config(cfg.trainer)
    check_config(cfg, settings)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, task = build_experiment(cfg, settings)
    finetune = (cfg.get("callbacks") or {}).get("finetune")
    if finetune is not None and not finetune.get("enabled", True):
        finetune = None
    if finetune is not None:
        freeze(task.network, finetune.freeze_to, bool(finetune.train_bn))
    # the range test runs num_training steps however few batches an epoch holds
    lightning_cfg = settings.lightning.copy()
    lightning_cfg.max_epochs, lightning_cfg.max_steps = 10_000, -1
    trainer = instantiate(lightning_cfg, "trainer", callbacks=[], logger=False, default_root_dir=str(run_dir),
                          enable_checkpointing=False)
    finder = Tuner(trainer).lr_find(task, datamodule=datamodule, min_lr=cfg.min_lr, max_lr=cfg.max_lr,
                                    num_training=cfg.num_training, update_attr=False)
    lrs, losses = finder.results["lr"], finder.results["loss"]
    # like fastai's suggestions, leave out the first points (the smoothed loss is not settled
    # yet) and the last ones (already diverging)
    start, end = min(10, len(lrs) // 5), max(len(lrs) - 5, min(10, len(lrs) // 5) + 1)
    finite = [(lr, loss) for lr, loss in zip(lrs[start:end], losses[start:end]) if math.isfinite(loss)]
    steepest = finder.suggestion()
    minimum = min(finite, key=lambda p: p[1])[0] / 10 if finite else None
    fig = finder.plot(suggest=True)
    ax = fig.axes[0]
    if minimum is not None:
        ax.axvline(minimum, color="green", linestyle="--", label=f"minimum/10: {minimum:.2e}")
    ax.legend()
    ax.set_title(f"lr_find: {cfg.num_training} steps, {task.network.pretrained_cfg.arch} on {datamodule.name}")
    save_figure(fig, str(run_dir / "lr_find.png"))
    result = {"steepest": steepest, "minimum_over_10": minimum, "lr": list(lrs), "loss": list(losses),
              "frozen": finetune is not None}
    atomic_write_json(run_dir / "lr_find.json", result)
    shown = lambda v: "none (too few finite losses)" if v is None else f"{v:.2e}"  # noqa: E731
    print(f"\nSuggested learning rates: steepest {shown(steepest)}, minimum/10 {shown(minimum)}\n"
          f"Plot: {run_dir / 'lr_find.png'}", flush=True)
    return result


@hydra.main(version_base="1.3", config_path="conf", config_name="lr_find")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    lr_find(cfg)


def cli(argv: list[str]) -> int:
    """``fishbear lr_find ...`` and ``python -m fishbear.lr_find ...``."""
    sys.argv[1:] = argv
    run_hydra_main(main, argv, "lr_find")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
