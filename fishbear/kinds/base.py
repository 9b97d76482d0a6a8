"""What a task kind is: every part of fishbear that differs between kinds, behind one object.

A kind (classify, multilabel, segment, points, detect, regress) decides how its target travels
from a catalog sample through augmentation into a batch, what the network must output, how
outputs become predictions and predictions become what a user reads, which LightningModule
trains it, what its report section holds, what ``predict`` and ``frames`` write for it, and how
the embedded shapes data is written in its format. Everything else in fishbear asks the kind and
never compares kind names: adding a kind is a new package under ``fishbear/kinds/`` and its
configs.

This module and each kind's ``__init__`` import no Lightning, so inference needs none; the
LightningModule (``task.py``) and the report section (``report.py``) of a kind are imported only
when asked for.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
from torch.utils.data import default_collate

from fishbear.kinds.meta import KindSettings, NoSettings

if TYPE_CHECKING:
    from fishbear.data.catalog import Catalog, Sample
    from fishbear.data.shapes import ShapesSource
    from fishbear.kinds.meta import ModelMeta


class OutputWriter(Protocol):
    """What ``predict`` writes beside its CSV for one image (masks, drawn boxes), and its summary."""

    folder: Path

    def write(self, result: dict[str, Any], key: str, image: Path | np.ndarray) -> dict[str, str]: ...

    def note(self) -> str:
        """Called once, at the end: writes what spans images and says, in a clause, what was written."""


class Kind:
    """One task kind. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    # what the network must produce: a "vector" per image, "dense" scores per pixel, "boxes"
    output: ClassVar[str] = "vector"
    # the models to suggest when the chosen one has another output
    model_hint: ClassVar[str] = "a classifier such as model=resnet34"
    # evaluation resize: "crop" (short side, then centre crop, as torchvision and fastai do for
    # photographs) or "squish" (the whole frame, for targets that cover it: masks, points, boxes)
    eval_resize: ClassVar[str] = "crop"
    # what predict writes beside its CSV (``Kind.output_writer``), and the command-line key naming
    # its folder: "masks", "boxes"; None: the CSV says everything
    written_files: ClassVar[str | None] = None
    # a trained model of this kind can file video frames into class folders (fishbear.frames)
    sorts_frames: ClassVar[bool] = False
    # each image has one class, held by its folder: fishbear review ranks and relabels them
    reviews_labels: ClassVar[bool] = False
    # multi-label: review ranks each tag's yes/no by confident learning (engine/review/tags.py)
    reviews_tags: ClassVar[bool] = False
    # test metrics that are a share of test images: Wilson's interval applies when images are independent
    proportions: ClassVar[tuple[str, ...]] = ()
    # bootstrap draws for the test metrics' intervals (fishbear.reports.intervals)
    resamples: ClassVar[int] = 1000
    # the kind's package, where its task.py (LightningModule) and report.py (report section) live
    package: ClassVar[str]
    # the kind's own settings a trained model carries (``ModelMeta.settings``): one default each
    settings_type: ClassVar[type[KindSettings]] = NoSettings

    # -- packing: the target as a packed shard stores it (fishbear.data.pack) --------------------
    def pack_target(self, sample: Sample, scale: float) -> Any:
        """The sample's target for its picture resized by ``scale``, as a value LitData stores (a
        number, a string, bytes or an array; of one structure for every sample of the kind)."""
        return sample.target

    def unpack_target(self, value: Any) -> Any:
        """A packed target back in the form a reader gives it (what ``transform_inputs`` reads)."""
        return value

    # -- data: the target from sample to batch -------------------------------------------------
    def compose_args(self) -> dict[str, Any]:
        """Extra arguments of the albumentations pipeline (keypoint or bbox parameters)."""
        return {}

    def num_outputs(self, num_classes: int) -> int:
        return num_classes

    def transform_inputs(self, sample: Sample, image: np.ndarray, num_classes: int) -> dict[str, Any]:
        """What the transform receives besides the image (a mask, keypoints, boxes)."""
        return {}

    def target(self, sample: Sample, out: dict[str, Any], num_classes: int) -> Any:
        return sample.target

    def stratum(self, sample: Sample) -> Hashable | None:
        """What seeded hold-outs keep in proportion (classes; for boxes, empty vs. not); None: nothing."""
        return None

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return default_collate(items)

    def label_indices(self, sample: Sample) -> tuple[int, ...] | None:
        """The class indices a sample is labelled with, for per-class counts; None when targets
        are not labels (masks, points, boxes, values)."""
        return None

    def check_catalog(self, catalog: Catalog, root: Path) -> None:
        """Refuse a catalog this kind cannot learn from, naming the files (after the splits)."""

    def data_settings(self, datamodule: Any) -> dict[str, Any]:
        """Settings the training data decides (regression: the values' mean and spread), as
        keyword arguments of :attr:`settings_type`."""
        return {}

    # -- embedded data --------------------------------------------------------------------------
    def write_shapes(self, source: ShapesSource, root: Path) -> None:
        """Write the embedded shapes dataset into ``root`` in the real format this kind reads."""
        raise NotImplementedError(f"no shapes data for kind {self.name!r}")

    # -- inference (pure: no Lightning) ---------------------------------------------------------
    def predictions(self, outputs: Any) -> Any:
        """Network outputs as the kind's prediction (class probabilities, masks, points...)."""
        return outputs.float()

    def kept_predictions(self, outputs: Any) -> Any:
        """What the test stage keeps per image for the report (masks keep class indices, not scores)."""
        return self.predictions(outputs)

    has_probabilities: ClassVar[bool] = False  # the kind's outputs are class probabilities (adapt's tent)

    def entropy(self, outputs: Any) -> Any:
        """The mean entropy of the predicted probabilities (what ``fishbear adapt method=tent`` lowers),
        for kinds with :attr:`has_probabilities`."""
        raise NotImplementedError(f"a '{self.name}' model predicts no probabilities")

    # -- test-time augmentation (``tta=true``): the picture and its mirror image, answers merged --
    def mirror_refusal(self, meta: ModelMeta) -> str | None:
        """Why this model's answer on a mirrored picture cannot be mirrored back (one line), or None."""
        return (f"tta=true averages the answers on a picture and on its mirror image, and a '{self.name}' model's answer "
                "cannot be mirrored back here; leave tta off.")

    def unmirror(self, outputs: Any, width: int) -> Any:
        """The outputs on a mirrored picture (``width`` pixels wide) as the outputs on the picture itself."""
        return outputs

    def merge_views(self, outputs: Any, other: Any) -> Any:
        """Two views' outputs as one, in the network's output space (so losses and metrics read it)."""
        return (outputs.float() + other.float()) / 2

    # -- self-training on new footage (``fishbear adapt method=pseudo``), kinds with probabilities --
    # mixup / CutMix (task.mixup, task.cutmix) mix this kind's targets as shares (classes, tags)
    mixes: ClassVar[bool] = False

    def soft_target(self, target: Any, num_classes: int) -> Any:
        """A batch's targets as N x K shares, which mixing blends (``mixes`` kinds)."""
        raise NotImplementedError(f"a '{self.name}' model's targets are not mixed")

    def pseudo_targets(self, outputs: Any, threshold: float) -> tuple[Any, Any]:
        """Targets read from the network's own ``outputs`` and a weight per target element: 1 where
        the prediction is at least ``threshold`` sure, else 0 (a doubtful guess teaches nothing)."""
        raise NotImplementedError(f"a '{self.name}' model predicts no probabilities")

    def labelled_targets(self, target: Any, settings: KindSettings) -> tuple[Any, Any]:
        """A batch of labelled ``target`` (the kind's own, as :meth:`target` makes them) as
        :meth:`pseudo_targets` gives them: the target and a weight per element (0: not scored)."""
        raise NotImplementedError(f"a '{self.name}' model predicts no probabilities")

    def fit_loss(self, outputs: Any, target: Any, weight: Any) -> Any:
        """The loss of ``outputs`` against weighted targets (from either of the two above)."""
        raise NotImplementedError(f"a '{self.name}' model predicts no probabilities")

    def doubt(self, outputs: Any) -> Any:
        """How unsure the network is of each picture, from 0 (sure) up: the order in which pictures are
        put to a person."""
        raise NotImplementedError(f"a '{self.name}' model predicts no probabilities")

    def interpret(self, predictions: Any, sizes: list[tuple[int, int]], meta: ModelMeta) -> list[dict[str, Any]]:
        """Predictions for images of original ``(height, width)`` ``sizes`` as what a user reads:
        one dict per image with ``summary`` (one line), ``columns`` (CSV cells by header, or
        ``rows``: several rows) and whatever else the kind hands over (a mask, boxes)."""
        raise NotImplementedError

    # -- export (fishbear export: an ONNX graph answering in the kind's user units) -------------------
    # the graph's outputs, in order, and what a standalone predictor does with them afterwards
    export_outputs: ClassVar[tuple[str, ...]] = ()
    # which reading of the standalone predictor (``fishbear.engine.deploy.standalone.READINGS``) answers
    export_reading: ClassVar[str] = ""
    # None: the graph takes any batch (torch.export); 1: one picture a run, its outputs of any length (boxes)
    export_batch: ClassVar[int | None] = None

    def exported(self, outputs: Any, original_size: Any, meta: ModelMeta) -> tuple[Any, ...]:
        """The network's outputs as :attr:`export_outputs`, in torch operations an ONNX exporter
        traces (``original_size``: N x 2 heights and widths of the pictures before resizing)."""
        raise NotImplementedError(f"a '{self.name}' model cannot be exported")

    def export_refusal(self, meta: ModelMeta) -> str | None:
        """Why a model of this kind (and these settings) is not exported, in one sentence; None: it is."""
        return None if self.export_outputs else f"a '{self.name}' model cannot be exported yet"

    def export_info(self, meta: ModelMeta) -> dict[str, Any]:
        """What ``export.json`` adds for this kind (a mask palette, what is done after the graph)."""
        return {}

    # the largest difference, in the kind's user units, between the numbers of two readings of one
    # picture (the checkpoint's and an export's) that the parity report lets pass
    parity_tolerance: ClassVar[float] = 1e-4

    def headline(self, answers: list[dict[str, Any]], samples: list[Sample], classes: list[str]) -> tuple[str, Any, bool]:
        """The metric a user judges the model by, per test picture, from the readings ``answers``
        of ``samples``: its name, the per-picture values (their mean is the figure) and whether
        higher is better. None: the kind has none for parity."""
        raise NotImplementedError

    # -- the parts that need Lightning, matplotlib or scikit-learn, imported when asked -----------
    def task_class(self) -> type:
        """The LightningModule that trains this kind (``fishbear.kinds.<kind>.task``)."""
        module = importlib.import_module(f"{self.package}.task")
        return module.TASK

    def section(self, results: dict[str, Any], classes: list[str], run_dir: Path, samples: list[Path],
                task: Any = None) -> dict[str, Any]:
        """The kind's part of ``report.json`` (figures written into ``run_dir``)."""
        return importlib.import_module(f"{self.package}.report").section(results, classes, run_dir, samples, task)

    def metric_function(self, results: dict[str, Any], classes: list[str], task: Any = None) -> Any:
        """The test metrics as a function of per-image bootstrap weights (``fishbear.reports.intervals``)."""
        return importlib.import_module(f"{self.package}.report").metric_function(results, classes, task)

    def markdown(self, section: dict[str, Any], report: dict[str, Any]) -> list[str]:
        """The kind's part of ``report.md``."""
        return importlib.import_module(f"{self.package}.report").markdown(section, report)

    # -- what predict and frames write ----------------------------------------------------------
    def output_writer(self, meta: dict[str, Any], folder: Path, files: Any) -> OutputWriter:
        """The writer of the files beside ``predict``'s CSV (kinds with ``written_files``), writing
        through ``files`` (the command's :class:`~fishbear.core.outputs.OutputFiles`)."""
        raise NotImplementedError(f"kind {self.name!r} writes no files beside the CSV")

    def event_target(self, classes: list[str]) -> str | None:
        """The class whose visits ``frames`` reports when none is named: of two classes the one
        not named as an absence (``fish`` of ``fish``/``no_fish``); None: it must be named."""
        from fishbear.reports.events import default_target

        return default_target(classes)

    def event_score(self, result: dict[str, Any], target: str) -> float:
        """How strongly one sorted frame shows ``target`` (``fishbear.reports.events`` smooths these into visits)."""
        raise NotImplementedError(f"kind {self.name!r} does not sort frames")

    def frame_columns(self, result: dict[str, Any]) -> dict[str, str]:
        """Extra ``frames.csv`` columns for a sorted frame (detection: its boxes)."""
        return {}

    # -- shared helpers --------------------------------------------------------------------------
    def label_counts(self, catalog: Catalog) -> dict[str, dict[str, int]]:
        """Images per class (or tag) and split; empty for kinds whose targets are not labels."""
        out: dict[str, dict[str, int]] = {}
        for split, samples in catalog.splits.items():
            per_class: Counter[str] = Counter()
            for sample in samples:
                indices = self.label_indices(sample)
                if indices is None:
                    return {}
                per_class.update(catalog.classes[i] for i in indices)
            out[split] = {name: per_class.get(name, 0) for name in catalog.classes}
        return out

    def __repr__(self) -> str:
        return f"<kind {self.name}>"
