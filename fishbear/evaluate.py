"""``python -m fishbear.evaluate ckpt=PATH data=NAME``: test a checkpoint and write its report
(``report.json``, ``report.md``, figures, TensorBoard) into ``outputs/evaluate/<date>/<time>/``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from fishbear.core.errors import CheckpointError

# importing fishbear.engine.config registers its resolvers before Hydra composes
from fishbear.engine.commandline import route_library_logs_to_root, run_hydra_main, user_errors_exit
from fishbear.engine.config import instantiate, instantiate_group


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    from fishbear.engine.checkpoint import load_checkpoint, network_from_checkpoint
    from fishbear.engine.experiment import build_datamodule, test_and_report
    from fishbear.engine.run_folder import check_owner
    from fishbear.engine.settings import TrainerSettings

    route_library_logs_to_root()
    started = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    check_owner(run_dir, "evaluate")  # a folder of the user's (or a training run's) is refused
    datamodule = build_datamodule(cfg)
    checkpoint = load_checkpoint(cfg.ckpt, kind=datamodule.kind)
    meta = checkpoint.meta
    datamodule.use_feed(meta.feed)  # fed as the checkpoint was
    datamodule.prepare_data()
    datamodule.setup("test")
    if tuple(datamodule.classes) != meta.classes:
        raise CheckpointError(f"{cfg.ckpt} was trained on classes {list(meta.classes)}, but {datamodule.root} has "
                              f"{datamodule.classes}; evaluate on data with the same classes.")
    settings = TrainerSettings.from_config(cfg.trainer)
    network = network_from_checkpoint(checkpoint)
    if cfg.tta:
        from fishbear.engine.mirror import MirrorAveraged

        network = MirrorAveraged(network, datamodule.kind, meta)
    task = instantiate(cfg.task, "task", network=network, classes=list(meta.classes), meta=meta, **settings.task_args())
    loggers = instantiate_group(cfg.get("logger"), "logger")
    trainer = instantiate(settings.lightning, "trainer", callbacks=[], logger=loggers or False,
                          default_root_dir=str(run_dir))
    return test_and_report(trainer, task, datamodule, cfg, run_dir, started,
                           extra={"checkpoint": str(Path(cfg.ckpt).resolve()), "tta": bool(cfg.tta)})


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


def _precheck(argv: list[str]) -> None:
    """Before Hydra writes into the folder: fishbear's evaluate folder (or new), and this evaluation's."""
    from fishbear.engine.run_folder import refuse_foreign_folder, refuse_other_overrides

    refuse_foreign_folder(argv, "evaluate")
    refuse_other_overrides(argv)


def cli(argv: list[str]) -> int:
    """``fishbear evaluate ...`` and ``python -m fishbear.evaluate ...``."""
    sys.argv[1:] = argv
    run_hydra_main(main, argv, "evaluate", _precheck)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
