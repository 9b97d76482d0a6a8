"""What every entry point shares, in one place: building the data module and the task from a
composed config, checking the config before any data is read, and testing and reporting.

``train``, ``evaluate`` and ``lr_find`` are thin shells over these; none imports another.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fishbear.core.errors import ConfigError
from fishbear.engine.config import check_node, choice_names, instantiate, instantiate_group, target_children
from fishbear.engine.settings import TrainerSettings
from fishbear.kinds import Kind, kind_of_task
from fishbear.kinds.meta import ModelMeta, Provenance

if TYPE_CHECKING:
    import lightning as L


def build_trainer(cfg: DictConfig, settings: TrainerSettings, run_dir: Path, extra_callbacks: tuple = ()) -> L.Trainer:
    """A training run's Trainer: the configured callbacks and loggers, less those this
    configuration cannot use (a learning-rate monitor without a logger, a progress bar that
    ``trainer.enable_progress_bar=false`` switched off), and checkpoints written atomically.
    One builder, so the overhead benchmark times what ``fishbear.train`` runs."""
    from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar

    from fishbear.training.callbacks.checkpoint_io import AtomicCheckpointIO
    from fishbear.training.callbacks.learning_rates import LearningRates

    callbacks = [c for c in instantiate_group(cfg.get("callbacks"), "callbacks") if c is not None]  # a recipe left off
    loggers = instantiate_group(cfg.get("logger"), "logger")
    if not loggers:  # logger=none: nothing to monitor learning rates into
        callbacks = [c for c in callbacks if not isinstance(c, (LearningRateMonitor, LearningRates))]
    if not settings.lightning.get("enable_progress_bar", True):  # Lightning refuses a bar it was told not to show
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    return instantiate(settings.lightning, "trainer", callbacks=[*callbacks, *extra_callbacks], logger=loggers or False,
                       default_root_dir=str(run_dir), plugins=[AtomicCheckpointIO()])


def check_config(cfg: DictConfig, settings: TrainerSettings) -> None:
    """Type-check every ``_target_`` node against its class; values known only at run time are skipped."""
    check_node(cfg.data, "data", skip={"kind"})
    check_node(cfg.model, "model", skip={"num_classes"})
    check_node(cfg.task, "task", skip={"network", "classes", "optim", "channels_last", "compile_network", "meta"})
    lightning_cfg = settings.lightning
    check_node(lightning_cfg, "trainer", skip={"callbacks", "logger", "default_root_dir", "plugins"})
    for group in ("callbacks", "logger"):
        for name, node in target_children(cfg.get(group)):
            check_node(node, f"{group}.{name}")
    optimized = cfg.get("optimized_metric")
    if optimized and optimized != cfg.task.monitor:
        raise ConfigError(f"optimized_metric={optimized}: a sweep or search chooses by validation, and a run keeps the "
                          f"best validation value of its monitor (task.monitor={cfg.task.monitor}) only; set "
                          f"optimized_metric={cfg.task.monitor}, or task.monitor=<another val/ metric>. Choosing by a "
                          "test figure would make the winner's test figure optimistic.")
    check_seed_and_data(cfg)
    epochs = lightning_cfg.get("max_epochs")
    if epochs is not None and epochs < 1 and not (lightning_cfg.get("max_steps") or -1) > 0:
        raise ConfigError(f"trainer.max_epochs={epochs}: a run trains for 1 epoch or more (or set trainer.max_steps).")
    for key in ("batch_size", "image_size"):
        value = cfg.data.get(key)
        sides = value if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else [value]
        if value is not None and any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in sides):
            raise ConfigError(f"data.{key}={value}: it must be a whole number of 1 or more"
                              + (" (or [height, width])" if key == "image_size" else "") + ".")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_seed_and_data(cfg: DictConfig) -> None:
    """Settings whose value is of the right type but cannot mean anything: one line each, naming
    the key and the allowed range, before any data is read."""
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed={seed}: give a whole number from 0 to {2**32 - 1}.")
    data = cfg.data
    workers = data.get("num_workers")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 0):
        raise ConfigError(f"data.num_workers={workers}: give 0 (load in the main process) or more loader processes, "
                          "or null for fishbear's choice.")
    valid, test = data.get("valid_pct"), data.get("test_pct")
    if valid is not None and (not _number(valid) or not 0 < valid < 1):
        raise ConfigError(f"data.valid_pct={valid}: the share of train held out for validation (when the data has no "
                          "valid/ folder) must be above 0 and below 1, e.g. 0.2.")
    if test is not None and (not _number(test) or not 0 <= test < 1):
        raise ConfigError(f"data.test_pct={test}: the share held out for testing must be from 0 (test on validation, "
                          "or on a test/ folder) to below 1, e.g. 0.2.")
    if _number(valid) and _number(test) and valid + test >= 1:
        raise ConfigError(f"data.valid_pct={valid} and data.test_pct={test} leave nothing to train on: their sum must "
                          "be below 1.")


def check_input_size(network: Any, datamodule: Any) -> None:
    """A network that downsamples 32 times cannot take 7-pixel images: try the data's size on the
    network before any training, and name the smallest size that works."""
    import torch

    if getattr(network, "output", "vector") not in ("vector", "dense"):
        return  # detectors resize their input themselves

    def fits(height: int, width: int) -> bool:
        was_training = network.training
        network.eval()
        try:
            with torch.no_grad():
                network(torch.zeros(1, 3, height, width))
            return True
        except (RuntimeError, AssertionError, ValueError):  # a timm ViT asserts its own size
            return False
        finally:
            network.train(was_training)

    from fishbear.core.geometry import as_hw

    height, width = as_hw(datamodule.image_size)
    if fits(height, width):
        return
    own = network.pretrained_cfg.extra.get("input_size")  # a timm model's: a ViT takes that size alone
    if own and fits(*own[-2:]):
        raise ConfigError(f"data.image_size={datamodule.image_size} does not fit {network.pretrained_cfg.arch}, "
                          f"which takes {own[-2]}x{own[-1]} pictures (its pretrained_cfg): set data.image_size={own[-2]}.")
    smallest = next((side for side in (8, 16, 32, 64, 128, 256, 512) if fits(side, side)), None)
    need = f"at least {smallest} px a side" if smallest else "a larger size"
    raise ConfigError(f"data.image_size={datamodule.image_size} is too small for this network (model="
                      f"{network.pretrained_cfg.arch}): it needs {need}"
                      + (" and a size divisible by 32" if getattr(network, "output", "") == "dense" else "") + ".")


def build_datamodule(cfg: DictConfig, **overrides: Any) -> Any:
    """The data module of ``cfg.data``, of the kind of the task its config chose (``cfg.task``)."""
    return instantiate(cfg.data, "data", kind=task_kind(cfg), **overrides)


def trains_on_cpu(trainer_cfg: DictConfig) -> bool:
    import torch

    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()
                                    and not torch.backends.mps.is_available())


def _cpu_plan(cfg: DictConfig) -> dict[str, Any]:
    """On a CPU run the loader and the model share the cores (``fishbear.core.runtime``): unless
    ``data.num_workers`` is given, few cores load in the main process, and the model's threads
    are the cores the workers leave. GPU runs keep the data module's default (cores - 1)."""
    from fishbear.core.runtime import available_cores, cpu_training_workers, share_cores_with_loader

    if not trains_on_cpu(cfg.trainer):
        return {}
    given = cfg.data.get("num_workers")
    workers = cpu_training_workers(available_cores()) if given is None else int(given)
    share_cores_with_loader(workers)
    return {} if given is not None else {"num_workers": workers}


def task_kind(cfg: DictConfig) -> Kind:
    """The task kind a composed config trains: the kind of its task class."""
    if cfg.get("task") is None or "_target_" not in cfg.task:
        raise ConfigError("the config has no task: a data config chooses one (defaults: /task@_global_.task: <kind>)")
    return kind_of_task(cfg.task._target_)


def build_experiment(cfg: DictConfig, settings: TrainerSettings) -> tuple[Any, Any]:
    """The data module (read, so its classes are known) and the task around a network sized for it;
    the data normalises with the network's statistics. Shared by ``train`` and ``lr_find``."""
    from fishbear.core.runtime import tune_host_allocator

    tune_host_allocator()  # before the data module forks its loader workers
    datamodule = build_datamodule(cfg, **_cpu_plan(cfg))
    datamodule.prepare_data()
    datamodule.setup("fit")
    network = instantiate(cfg.model, "model", num_classes=datamodule.num_outputs)
    check_fits(network, datamodule)
    check_input_size(network, datamodule)
    datamodule.use_feed(dataclasses.replace(datamodule.feed, mean=tuple(network.pretrained_cfg.mean),
                                            std=tuple(network.pretrained_cfg.std)))
    from fishbear.engine.run_folder import fingerprint, record

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    kind, feed = datamodule.kind, datamodule.feed
    meta = ModelMeta(
        kind=kind.name, classes=tuple(datamodule.classes), image_size=feed.image_size, mean=feed.mean, std=feed.std,
        model_cfg=OmegaConf.to_container(cfg.model, resolve=True), resize=feed.resize,
        preprocess=feed.preprocess, data_name=datamodule.name,
        settings=kind.settings_type(**kind.data_settings(datamodule)),
        # what a resume checks: the run it belongs to, and the split it was started on
        provenance=Provenance(run=record(Path(cfg.paths.output_dir), overrides, _run_config(cfg)),
                              data_fingerprint=fingerprint(datamodule.catalog.splits, datamodule.root)))
    task = instantiate(cfg.task, "task", network=network, classes=datamodule.classes, meta=meta, **settings.task_args())
    return datamodule, task


def _run_config(cfg: DictConfig) -> str:
    """The composed config as YAML, interpolations kept, without Hydra's section."""
    return OmegaConf.to_yaml({k: cfg._get_node(k) for k in cfg if k != "hydra"})


def check_fits(network: Any, datamodule: Any) -> None:
    """A model that predicts one vector per image cannot score pixels or box objects, and the other way round."""
    kind = datamodule.kind
    given = getattr(network, "output", "vector")
    if kind.output != given:
        raise ConfigError(f"data={datamodule.name} is a '{kind.name}' dataset, which needs a model with "
                          f"{kind.output} output; the chosen model has {given} output. Use {kind.model_hint}.")


def test_and_report(trainer: L.Trainer, task: Any, datamodule: Any, cfg: DictConfig, run_dir: Path, started: float,
                    ckpt_path: str | None = None, run_test: bool = True, config: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Test on the held-out split, then write report.json/report.md, figures and TensorBoard
    entries and print the summary; shared by ``train`` and ``evaluate``."""
    from fishbear.core.environment import device_description
    from fishbear.engine.report import build_report, write_report

    metrics: dict[str, float] = {}
    if run_test and ckpt_path:
        from fishbear.engine.checkpoint import read_meta

        # test at the size the tested weights were trained at (progressive resizing changes it)
        datamodule.set_image_size(read_meta(ckpt_path).image_size)
    if run_test:
        trainer.test(task, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        if trainer.world_size > 1 and task.test_results:
            # the processes' metrics counted the images the distributed sampler repeated; the
            # gathered per-image results hold each image once, as a one-process evaluation does
            n = len(task.test_results["index"])
            exact = task.kind.metric_function(task.test_results, task.classes, task)(np.ones(n))
            metrics = {k: float(exact.get(k.removeprefix("test/"), v)) for k, v in metrics.items()}
    if not trainer.is_global_zero:
        return {}  # one report, one summary: rank 0's
    intervals = test_metric_intervals(task, datamodule, metrics, int(cfg.get("seed") or 0))
    report = build_report(
        kind=task.kind.name,
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
            "intervals": intervals,
            "wall_seconds": time.perf_counter() - started,
            "device": device_description(type(trainer.accelerator).__name__.replace("Accelerator", "").lower()),
            **(extra or {}),
        },
    )
    write_report(run_dir, report)
    _log_final(trainer, report, run_dir)
    _print_summary(run_dir, report)
    return report


def test_metric_intervals(task: Any, datamodule: Any, metrics: dict[str, float], seed: int) -> dict[str, Any]:
    """A 95% interval per test metric from the per-image test results (``fishbear.reports.intervals``):
    resampling test images, or the test split's groups or time blocks when it has them."""
    from fishbear.reports.intervals import metric_intervals

    results = task.test_results
    if not results or not metrics:
        return {}
    n = len(results["index"])
    kind = task.kind
    proportions = {name: metrics[f"test/{name}"] * n for name in kind.proportions if f"test/{name}" in metrics}
    groups = datamodule.test_groups()
    if groups is not None:  # the tested images' groups (a limited test loop tests a prefix)
        groups = [groups[int(i)] for i in results["index"]]
    return metric_intervals(metrics, kind.metric_function(results, task.classes, task), n, groups,
                            kind.resamples, seed, proportions)


def _log_final(trainer: L.Trainer, report: dict[str, Any], run_dir: Path) -> None:
    """Into every logger, the settings with the final metrics (TensorBoard's HPARAMS tab; a CSV
    logger's hparams.yaml), and into TensorBoard the report and its figures."""
    import numpy as np
    import torch
    from PIL import Image

    from fishbear.engine.report import render_markdown
    from fishbear.training.trackers import log_files

    config = report["config"]
    # keys every tracker takes (MLflow refuses `@`: choice/data_split@data -> choice/data_split_data)
    params = {**{re.sub(r"[^\w\-. :/]", "_", f"choice/{k}"): v for k, v in config["choices"].items()},
              **{k: config[k] for k in ("lr", "lr_div", "optimizer", "schedule", "max_epochs", "precision", "seed")
                 if config.get(k) is not None},
              "batch_size": report["data"]["batch_size"], "image_size": report["data"]["image_size"]}
    final = {f"hparams/{k.replace('/', '_')}": v for k, v in report["metrics"].items()}
    figures = report.get(report["kind"], {}).get("figures", {})
    files = [run_dir / "report.json", run_dir / "report.md", *(run_dir / name for name in figures.values())]
    for logger in trainer.loggers:
        if not hasattr(logger.experiment, "add_text"):  # a tracker (CSV, MLflow, W&B): settings, final figures, files
            logger.log_hyperparams({**params, **final})
            log_files(logger, [path for path in files if path.is_file()])
            logger.save()
            continue
        logger.log_hyperparams(params, final or None)
        logger.experiment.add_text("report", render_markdown(report), global_step=trainer.global_step)
        for name, filename in figures.items():
            image = torch.from_numpy(np.array(Image.open(run_dir / filename).convert("RGB")))
            logger.experiment.add_image(f"test/{name}", image, global_step=trainer.global_step, dataformats="HWC")
        logger.experiment.flush()


def _print_summary(run_dir: Path, report: dict[str, Any]) -> None:
    metrics = "  ".join(f"{k}={v:.4f}" for k, v in report["metrics"].items())
    fit = f"   Fit: {report['fit_seconds']:.1f} s" if "fit_seconds" in report else ""
    print(f"\nRun folder: {run_dir}\nTest ({report['data']['test_split']} split, "
          f"{report['data']['sizes'].get(report['data']['test_split'], '?')} images): {metrics}\n"
          f"Report: {run_dir / 'report.md'}{fit}", flush=True)


def monitor_value(report: dict[str, Any], cfg: DictConfig) -> float | None:
    """The figure a sweeper optimises: the run's best validation value of its monitor, so that no
    choice between runs looks at the test split (``check_config`` refuses any other
    ``optimized_metric``); None from a DDP process other than rank 0 (it reports nothing)."""
    validation = report.get("validation") or {}
    return validation.get("best")


