"""What a person should look at first, and in what order: the cards of ``fishbear review``.

Three sources, each ranked the honest way for it:

- **a run**: its validation and test images, by the loss of the checkpoint's probability of the
  image's label (``-log p``), the most confused pairs (label -> call) first; training images only
  when asked, marked in-sample (a model's loss on what it trained on says little);
- **a sweep of k-fold runs** (``-m data.split=kfold data.fold=0,1,2,3,4``): every image by the
  probabilities of the one model that did not train on it (each run's test fold): by confident
  learning (``rank=confident``, :mod:`~fishbear.engine.review.confident`: the flagged labels first,
  with the likely label and the estimated number of wrong labels per class) or by loss
  (``rank=loss``);
- **frames sorted by** ``fishbear frames sort_with=``: the frames marked ``review=yes`` first, then
  by how close their smoothed score is to the fence, each with its neighbours in time.

Every item names its file relative to the dataset's folder, the only folder the page serves.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fishbear.core.errors import DataError
from fishbear.kinds import get_kind


@dataclass
class Item:
    file: str                 # relative to the dataset root, "/" separated
    label: str                # the label the dataset gives it now
    call: str                 # the model's class
    probability: float        # of the call
    p_label: float            # of the label
    loss: float               # -log p_label
    split: str = ""
    in_sample: bool = False   # the model trained on it
    note: str = ""            # "review" for frames marked so, "out-of-fold" for a sweep
    neighbours: list[str] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)  # per class, in the classes' order
    likely: str = ""          # rank=confident: the class the image most likely is
    score: float | None = None  # rank=confident: the normalised margin, from -1 (surely wrong) to 1
    flagged: bool = False     # rank=confident: counted among the likely wrong labels

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "probabilities"}


@dataclass
class ReviewSet:
    """The cards, the classes, the dataset folder they live in, and how its class folders sit."""

    root: Path
    classes: list[str]
    items: list[Item]
    source: str                  # a line for the page's header
    class_depth: int             # which part of an item's path is its class folder (ImageFolder: 1, frames: 0)
    folder_of: dict[str, str] = field(default_factory=dict)  # class -> folder name (a reader's class_map undone)
    wrong: dict[str, float] = field(default_factory=dict)  # rank=confident: estimated wrong labels per class
    into: Path | None = None     # unlabelled pictures: the folder of the dataset's training class folders
    dataset_root: Path | None = None  # unlabelled pictures: the dataset they are labelled into

    @property
    def files(self) -> set[str]:
        return {i.file for i in self.items} | {n for i in self.items for n in i.neighbours}


def _ranked(items: list[Item]) -> list[Item]:
    """By loss alone, the highest first. Grouping the wrong calls by confusion pair first (the
    order until 2026-12-07) filled the top with a frequent pair's right labels: on planted errors
    it found 0.20-0.61 of them in the first cards where the loss alone found 0.80-0.85
    (``experiments/label_errors``). The page's filters still pick a pair."""
    return sorted(items, key=lambda i: (-i.loss, i.file))


def confident_ranked(items: list[Item], classes: list[str]) -> tuple[list[Item], dict[str, float]]:
    """The items in confident learning's order, each given its likely label, score and flag, and
    the estimated number of wrong labels per class."""
    import numpy as np

    from fishbear.engine.review.confident import label_issues

    index = {name: i for i, name in enumerate(classes)}
    issues = label_issues(np.array([it.probabilities for it in items]), np.array([index[it.label] for it in items]))
    for it, likely, score, flag in zip(items, issues.likely, issues.score, issues.flagged):
        it.likely, it.score, it.flagged = classes[int(likely)], round(float(score), 5), bool(flag)
    wrong = {name: round(float(n), 1) for name, n in zip(classes, issues.wrong)}
    return [items[i] for i in issues.order], wrong


RANKS = ("loss", "confident", "uncertain")


def ranking_rows(review: ReviewSet) -> list[dict[str, Any]]:
    """The cards in their order as the rows of ``ranking.csv``: the file relative to the dataset,
    the given label, the likely label, the score, the rank (from 1) and the flag."""
    rows = []
    for rank, it in enumerate(review.items, start=1):
        likely = it.likely or it.call
        score = it.score if it.score is not None else round(it.loss, 5)
        rows.append({"file": it.file, "given": it.label, "likely": likely, "score": score, "rank": rank,
                     "flagged": int(it.flagged)})
    return rows


def relative(path: Path, root: Path) -> str:
    try:
        return Path(path).absolute().relative_to(Path(root).absolute()).as_posix()
    except ValueError:
        raise DataError(f"{path} is not under the dataset folder {root}; review reads ImageFolder datasets whose "
                        "images live in their folder.") from None


def _predicted(ckpt: Path, datamodule: Any, splits: list[str], note: str, in_sample: set[str]) -> list[Item]:
    from fishbear.engine.inference import Predictor

    predictor = Predictor.from_checkpoint(ckpt)
    classes = list(predictor.classes)
    items = []
    for split in splits:
        if split not in datamodule.catalog.splits:
            continue
        samples = datamodule.samples(split)
        for sample, (_, answer) in zip(samples, predictor.predict_files([Path(s.image) for s in samples])):
            label = classes[sample.target]
            p_label = max(answer["probabilities"][label], 1e-12)
            items.append(Item(relative(Path(sample.image), datamodule.root), label, answer["label"],
                              answer["probability"], p_label, -math.log(p_label), split, split in in_sample, note,
                              probabilities=[float(answer["probabilities"][c]) for c in classes]))
    return items


def class_folders(datamodule: Any) -> tuple[int, dict[str, str]]:
    reader = datamodule.reader
    if type(reader).__name__ != "ImageFolderReader":
        raise DataError(f"review moves images between class folders: data={datamodule.name} is read by "
                        f"{type(reader).__name__}, not an ImageFolder tree. Correct its labels in its own files.")
    folder_of = {}
    for folder, name in (reader.class_map or {}).items():
        folder_of.setdefault(name, folder)
    return 1, folder_of


def training_folder(datamodule: Any) -> Path:
    """The folder that holds the dataset's training class folders (ImageFolder: ``root/train``)."""
    depth, _ = class_folders(datamodule)
    samples = datamodule.samples("train")
    if not samples:
        raise DataError(f"{datamodule.root} has no training pictures to label into.")
    parts = Path(relative(Path(samples[0].image), datamodule.root)).parts
    return Path(datamodule.root).joinpath(*parts[:depth])


def run_items(run_dir: Path, train: bool = False, rank: str = "loss") -> ReviewSet:
    """A run's validation and test images (and training images, in-sample, with ``train``)."""
    from fishbear.engine.checkpoint import read_meta
    from fishbear.engine.run_data import run_datamodule

    if rank != "loss":
        raise DataError(f"rank={rank} needs every image predicted by a model that did not train on it: give sweep= of "
                        "a k-fold sweep (fishbear train -m data.split=kfold data.fold=0,1,2,3,4), or rank=loss.")
    ckpt = Path(run_dir) / "checkpoints" / "best.ckpt"
    meta = read_meta(ckpt)
    if not get_kind(meta.kind).reviews_labels:
        raise DataError(f"{run_dir} is a '{meta.kind}' run; review ranks class labels (for boxes it writes Label "
                        "Studio tasks: fishbear review run=RUN for a detector).")
    datamodule = run_datamodule(meta)
    depth, folder_of = class_folders(datamodule)
    splits = ["valid", "test"] + (["train"] if train else [])
    items = _predicted(ckpt, datamodule, splits, "", {"train"})
    return ReviewSet(datamodule.root, list(meta.classes), _ranked(items),
                     f"run {run_dir}: {', '.join(splits)} images by loss", depth, folder_of)


def sweep_runs(sweep_dir: Path) -> list[Path]:
    """The run folders of a sweep that hold a best checkpoint, in order."""
    runs = sorted(p.parent.parent for p in Path(sweep_dir).glob("*/checkpoints/best.ckpt"))
    if not runs:
        raise DataError(f"{sweep_dir} holds no runs with checkpoints/best.ckpt; give a sweep folder of "
                        "fishbear train -m data.split=kfold data.fold=0,1,2,3,4.")
    return runs


def check_out_of_fold(sweep_dir: Path, files: list[str]) -> None:
    """Each picture in one run's test split only: else the sweep is not a k-fold one."""
    seen = Counter(files)
    if seen and max(seen.values()) > 1:
        raise DataError(f"{sweep_dir}: {sum(n > 1 for n in seen.values())} images are in the test split of several runs: "
                        "not a k-fold sweep (give -m data.split=kfold data.fold=0,...,K-1).")


def sweep_items(sweep_dir: Path, rank: str = "loss") -> ReviewSet:
    """Every image of a k-fold sweep by its out-of-fold probabilities (each run's test fold,
    predicted by that run's model), ranked by ``rank``: ``confident`` or ``loss``."""
    from fishbear.engine.checkpoint import read_meta
    from fishbear.engine.run_data import run_datamodule

    runs = sweep_runs(sweep_dir)
    items: list[Item] = []
    root, classes, depth, folder_of = None, None, 1, {}
    for run in runs:
        meta = read_meta(run / "checkpoints" / "best.ckpt")
        datamodule = run_datamodule(meta)
        if root is not None and Path(datamodule.root).absolute() != Path(root).absolute():
            raise DataError(f"{run} trained on {datamodule.root}, the sweep's other runs on {root}: one dataset per review.")
        root, classes = datamodule.root, list(meta.classes)
        depth, folder_of = class_folders(datamodule)
        items += _predicted(run / "checkpoints" / "best.ckpt", datamodule, [datamodule.test_split], "out-of-fold", set())
    check_out_of_fold(sweep_dir, [i.file for i in items])
    if rank == "confident":
        ranked, wrong = confident_ranked(items, classes)
        estimate = ", ".join(f"{name} {n:g}" for name, n in wrong.items())
        return ReviewSet(root, classes, ranked, f"k-fold sweep {sweep_dir}: {len(runs)} runs, confident learning on the "
                         f"out-of-fold probabilities; estimated wrong labels: {estimate}", depth, folder_of, wrong)
    return ReviewSet(root, classes, _ranked(items), f"k-fold sweep {sweep_dir}: {len(runs)} runs, out-of-fold loss",
                     depth, folder_of)


def frames_items(folder: Path, neighbours: int = 2) -> ReviewSet:
    """The frames of ``fishbear frames sort_with=``: ``review=yes`` first, then the least sure."""
    table = Path(folder) / "frames.csv"
    if not table.is_file():
        raise DataError(f"{table} does not exist: give frames=DIR of fishbear frames ... sort_with=CKPT out=DIR.")
    rows = list(csv.DictReader(table.open(newline="")))
    if not rows or "class" not in rows[0]:
        raise DataError(f"{table} has no class column: those frames were not sorted (give sort_with= to fishbear frames).")
    target = next((k.removeprefix("smoothed_") for k in rows[0] if k.startswith("smoothed_")), None)
    classes = sorted({r["class"] for r in rows} | ({target, f"no_{target}"} if target else set()))
    order = [r["file"] for r in rows]
    items = []
    for i, row in enumerate(rows):
        smoothed = float(row.get(f"smoothed_{target}") or row.get("confidence") or 0.5) if target else 0.5
        confidence = float(row.get("confidence") or 0.0)
        label = row["class"]
        items.append(Item(row["file"], label, label, confidence, confidence, abs(smoothed - 0.5),
                          note="review" if row.get("review") == "yes" else "",
                          neighbours=order[max(0, i - neighbours):i] + order[i + 1:i + 1 + neighbours]))
    items.sort(key=lambda it: (it.note != "review", it.loss, it.file))
    for it in items:  # the loss column of frames is the distance of the smoothed score from the fence
        it.loss = round(it.loss, 4)
    return ReviewSet(Path(folder), classes, items, f"frames {folder}: review=yes first, then the least sure", 0, {})
