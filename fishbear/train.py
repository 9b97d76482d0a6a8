"""Train, test and report: ``python -m fishbear.train [group=choice ...] [key=value ...]``.

``python -m fishbear.train --resume RUN_DIR`` continues a killed run in its own folder from
``checkpoints/last.ckpt``, with the overrides it was started with.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

# importing fishbear.config registers its resolvers before Hydra composes
from fishbear.cli import route_library_logs_to_root, user_errors_exit
from fishbear.config import check_node, choice_names, instantiate, instantiate_group, target_children
from fishbear.errors import CheckpointError, FishbearError

if TYPE_CHECKING:
    import lightning as L

    from fishbear.optim import OptimSettings

# torch, Lightning and the rest are imported inside the functions below, after Hydra has
# composed the config: a mistyped override is answered in a second, not after ten.

def split_trainer_config(trainer_cfg: DictConfig) -> tuple[DictConfig, OptimSettings, bool]:
    """Separate fishbear's keys (optimiser, schedule, memory format) from Lightning's Trainer args."""
    from fishbear.optim import OptimSettings

    fishbear_keys = (*OptimSettings.keys(), "channels_last")
    lightning_part = OmegaConf.create({k: v for k, v in trainer_cfg.items() if k not in fishbear_keys})
    optim_part = OmegaConf.create({"_target_": "fishbear.optim.OptimSettings",
                                   **{k: trainer_cfg[k] for k in OptimSettings.keys() if k in trainer_cfg}})
    optim = instantiate(optim_part, "trainer")
    return lightning_part, optim, bool(trainer_cfg.get("channels_last", False))


def _resolve_ckpt_path(ckpt_path: str | None, run_dir: Path) -> str | None:
    if ckpt_path in (None, ""):
        return None
    path = run_dir / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint {path} does not exist. Give ckpt_path=<run folder>/checkpoints/last.ckpt of the run "
            "to continue, or resume a whole run with: python -m fishbear.train --resume <run folder>"
        )
    return str(path)


def check_config(cfg: DictConfig, lightning_cfg: DictConfig) -> None:
    """Type-check every ``_target_`` node against its class; values known only at run time are skipped."""
    check_node(cfg.data, "data")
    check_node(cfg.model, "model", skip={"num_classes"})
    check_node(cfg.task, "task", skip={"network", "classes", "optim", "channels_last", "meta"})
    check_node(lightning_cfg, "trainer", skip={"callbacks", "logger", "default_root_dir", "plugins"})
    for group in ("callbacks", "logger"):
        for name, node in target_children(cfg.get(group)):
            check_node(node, f"{group}.{name}")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then test the best checkpoint and write the report; returns the report."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor

    from fishbear.callbacks.checkpoint_io import AtomicCheckpointIO

    route_library_logs_to_root()
    started = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    lightning_cfg, optim, channels_last = split_trainer_config(cfg.trainer)
    check_config(cfg, lightning_cfg)  # every mistake reported before any data is generated or read
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule, task = build_experiment(cfg, optim, channels_last)
    callbacks = instantiate_group(cfg.get("callbacks"), "callbacks")
    loggers = instantiate_group(cfg.get("logger"), "logger")
    if not loggers:  # logger=none: nothing to monitor learning rates into
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer = instantiate(lightning_cfg, "trainer", callbacks=callbacks, logger=loggers or False,
                          default_root_dir=str(run_dir), plugins=[AtomicCheckpointIO()])

    fit_started = time.perf_counter()
    trainer.fit(task, datamodule=datamodule, ckpt_path=_resolve_ckpt_path(cfg.get("ckpt_path"), run_dir))
    fit_seconds = time.perf_counter() - fit_started
    if trainer.interrupted:
        raise FishbearError(f"Training was interrupted; continue with: python -m fishbear.train --resume {run_dir}")

    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    task.after_fit(trainer, datamodule, best)
    return test_and_report(
        trainer, task, datamodule, cfg, run_dir, started, ckpt_path=best, run_test=cfg.get("test", True),
        config={"lr": optim.lr, "lr_div": optim.lr_div, "optimizer": optim.optimizer, "schedule": optim.schedule,
                "max_epochs": trainer.max_epochs, "channels_last": channels_last},
        extra={"epochs": trainer.current_epoch, "best_checkpoint": best, "fit_seconds": fit_seconds},
    )


def build_experiment(cfg: DictConfig, optim: OptimSettings, channels_last: bool) -> tuple[Any, Any]:
    """The data module (read, so its classes are known) and the task around a network sized for it;
    the data normalises with the network's statistics. Shared by ``train`` and ``lr_find``."""
    from fishbear.runtime import tune_host_allocator

    tune_host_allocator()  # before the data module forks its loader workers
    datamodule = instantiate(cfg.data, "data")
    datamodule.prepare_data()
    datamodule.setup("fit")
    network = instantiate(cfg.model, "model", num_classes=datamodule.num_outputs)
    check_fits(network, datamodule)
    datamodule.set_normalization(network.pretrained_cfg.mean, network.pretrained_cfg.std)
    meta = {
        "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
        "image_size": datamodule.image_size,
        "mean": list(datamodule.mean),
        "std": list(datamodule.std),
        "data_name": datamodule.name,
    }
    task = instantiate(cfg.task, "task", network=network, classes=datamodule.classes, optim=optim,
                       channels_last=channels_last, meta=meta)
    return datamodule, task


def check_fits(network: Any, datamodule: Any) -> None:
    """A model that predicts one vector per image cannot score pixels or box objects, and the other way round."""
    from fishbear.data.targets import codec
    from fishbear.errors import ConfigError

    wanted, given = codec(datamodule.kind).output, getattr(network, "output", "vector")
    if wanted != given:
        hint = {"dense": "model=unet", "boxes": "model=fasterrcnn_small (fast on a CPU), model=fasterrcnn_mobilenet or "
                "model=fasterrcnn"}.get(wanted, "a classifier such as model=resnet34 or model=point_regressor")
        raise ConfigError(f"data={datamodule.name} is a '{datamodule.kind}' dataset, which needs a model with "
                          f"{wanted} output; the chosen model has {given} output. Use {hint}.")


def test_and_report(trainer: L.Trainer, task: Any, datamodule: Any, cfg: DictConfig, run_dir: Path, started: float,
                    ckpt_path: str | None = None, run_test: bool = True, config: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Test on the held-out split, then write report.json/report.md, figures and TensorBoard
    entries and print the summary; shared by ``train`` and ``evaluate``."""
    from fishbear.report import build_report, device_description, write_report

    metrics: dict[str, float] = {}
    if run_test and ckpt_path:
        from fishbear.inference import load_checkpoint

        # test at the size the tested weights were trained at (progressive resizing changes it)
        datamodule.set_image_size(load_checkpoint(ckpt_path)["fishbear"]["image_size"])
    if run_test:
        trainer.test(task, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    report = build_report(
        kind=task.kind,
        classes=task.classes,
        results=task.test_results,
        metrics=metrics,
        run_dir=run_dir,
        data={**datamodule.describe(), "test_split": datamodule.test_split},
        samples=[sample.image for sample in datamodule.samples(datamodule.test_split)],
        task=task,
        config={
            "choices": choice_names(cfg),
            "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [],
            "precision": str(trainer.precision), "seed": cfg.get("seed"), **(config or {}),
        },
        extra={
            "run_dir": str(run_dir),
            "monitor": {"metric": task.monitor.replace("val/", "test/"), "mode": task.monitor_mode},
            "wall_seconds": time.perf_counter() - started,
            "device": device_description(type(trainer.accelerator).__name__.replace("Accelerator", "").lower()),
            **(extra or {}),
        },
    )
    write_report(run_dir, report)
    _log_to_tensorboard(trainer, report, run_dir)
    _print_summary(run_dir, report)
    return report


def _log_to_tensorboard(trainer: L.Trainer, report: dict[str, Any], run_dir: Path) -> None:
    """Hyperparameters with the final metrics (the HPARAMS tab), the report and its figures."""
    import numpy as np
    import torch
    from PIL import Image

    from fishbear.report import render_markdown

    config = report["config"]
    params = {**{f"choice/{k}": v for k, v in config["choices"].items()},
              **{k: config[k] for k in ("lr", "lr_div", "optimizer", "schedule", "max_epochs", "precision", "seed")
                 if config.get(k) is not None},
              "batch_size": report["data"]["batch_size"], "image_size": report["data"]["image_size"]}
    final = {f"hparams/{k.replace('/', '_')}": v for k, v in report["metrics"].items()}
    for logger in trainer.loggers:
        if not hasattr(logger.experiment, "add_text"):
            continue
        logger.log_hyperparams(params, final or None)
        logger.experiment.add_text("report", render_markdown(report), global_step=trainer.global_step)
        for name, filename in report.get(report["kind"], {}).get("figures", {}).items():
            image = torch.from_numpy(np.array(Image.open(run_dir / filename).convert("RGB")))
            logger.experiment.add_image(f"test/{name}", image, global_step=trainer.global_step, dataformats="HWC")
        logger.experiment.flush()


def _print_summary(run_dir: Path, report: dict[str, Any]) -> None:
    metrics = "  ".join(f"{k}={v:.4f}" for k, v in report["metrics"].items())
    fit = f"   Fit: {report['fit_seconds']:.1f} s" if "fit_seconds" in report else ""
    print(f"\nRun folder: {run_dir}\nTest ({report['data']['test_split']} split, "
          f"{report['data']['sizes'].get(report['data']['test_split'], '?')} images): {metrics}\n"
          f"Report: {run_dir / 'report.md'}{fit}", flush=True)


def _monitor_value(report: dict[str, Any], cfg: DictConfig) -> float | None:
    key = cfg.get("optimized_metric") or report.get("monitor", {}).get("metric")
    return report["metrics"].get(key)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@user_errors_exit
def main(cfg: DictConfig) -> float | None:
    return _monitor_value(train(cfg), cfg)


def resume_argv(argv: list[str]) -> list[str]:
    """``--resume RUN_DIR`` becomes the run's own overrides, its folder and ``ckpt_path=last``."""
    if len(argv) < 3 or argv[1] != "--resume":
        return argv
    run_dir = Path(argv[2])
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.is_file():
        print(f"error: {run_dir} is not a fishbear run folder (no .hydra/overrides.yaml)", file=sys.stderr)
        raise SystemExit(2)
    old = [o for o in yaml.safe_load(overrides_file.read_text()) or []
           if not o.startswith(("hydra.run.dir=", "ckpt_path="))]
    return [argv[0], *old, *argv[3:], f"hydra.run.dir={run_dir}", "ckpt_path=last"]


if __name__ == "__main__":
    sys.argv = resume_argv(sys.argv)
    main()
