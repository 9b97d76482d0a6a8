"""A checkpoint adapted to new footage, written as a new one: the source checkpoint is only read.

The adapted checkpoint is the source's file with the network's weights and statistics replaced,
the normalisation changed where ``colour`` folded its map into it, the optimiser's state left out
(it belonged to the old weights), and ``provenance.adapted`` saying where it came from: the source
checkpoint's path and sha256, the footage's fingerprint, the methods and their settings, and what
each did. Every reader of checkpoints reads it as it reads any other.

Beside it, ``pseudo`` puts the pictures it doubts to a person: ``doubtful/<predicted class>/<name>.png``
(lossless, so they are recognised when they come back) and ``doubtful.csv``. A person moves the
misfiled ones to the right class folder and runs ``adapt`` again with ``labelled=OUT/doubtful``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

import torch

from fishbear.core.errors import ConfigError, DataError
from fishbear.engine.adapt.footage import Footage
from fishbear.engine.adapt.methods import METHODS, Adaptation, AdaptSettings, channel_stats, refusal
from fishbear.engine.adapt.pseudo import PseudoSettings

REFERENCE_PICTURES = 300  # training pictures whose colours stand for the training footage's
WRITTEN = ("checkpoints/best.ckpt", "adapt.json", "adapt.md", "doubtful.csv")
QUEUE = "doubtful"


def adapt_checkpoint(ckpt: str | Path, footage: Footage, settings: AdaptSettings, reference: Footage | None = None,
                     device: str = "cpu", labelled: str | Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint at ``ckpt`` adapted to ``footage``: the new checkpoint's contents (to be
    saved with ``torch.save``) and what was done, for the report (with ``doubtful``: the pictures
    ``pseudo`` puts to a person). ``reference``: pictures of the training footage for ``colour``
    (default: the run's own training split, read again from its data config); ``labelled``: a
    folder of footage pictures a person sorted into class folders, for ``pseudo``."""
    from fishbear.core.outputs import sha256_of
    from fishbear.data.transforms import build_transforms
    from fishbear.engine.checkpoint import load_checkpoint, network_from_checkpoint, rewritten
    from fishbear.kinds import get_kind

    started = time.perf_counter()
    checkpoint = load_checkpoint(ckpt)
    meta, kind = checkpoint.meta, get_kind(checkpoint.meta.kind)
    network = network_from_checkpoint(checkpoint).to(device)
    for method in settings.methods:
        why = refusal(method, network, kind)
        if why:
            raise DataError(why)
    transform = build_transforms("predict", meta.image_size, None, kind, meta.resize, meta.preprocess)
    data = _RunData(meta)
    state = Adaptation(network=network, kind=kind, mean=tuple(meta.mean), std=tuple(meta.std),
                       pictures=footage.fed(transform), settings=settings, device=torch.device(device),
                       reference=lambda: channel_stats(_reference(data, transform, reference)),
                       source=data.training_pictures, kind_settings=meta.settings,
                       labelled=_labelled(labelled, meta, kind, transform) if labelled else None)
    notes = {method: METHODS[method](state) for method in settings.methods}
    adapted = {"from": str(Path(ckpt).absolute()), "from_sha256": sha256_of(Path(ckpt)), "footage": footage.source,
               "methods": list(settings.methods), "settings": dataclasses.asdict(settings), "notes": notes,
               "seconds": round(time.perf_counter() - started, 2)}
    if labelled:
        adapted["labelled"] = str(Path(labelled).absolute())
    adapted["doubtful"] = _doubtful(state, footage, meta)
    new_meta = meta.replace(mean=state.mean, std=state.std,
                            provenance=dataclasses.replace(meta.provenance, adapted=adapted))
    weights = {**checkpoint.state_dict, **{f"network.{k}": v for k, v in network.state_dict().items()}}
    return rewritten(ckpt, weights, new_meta, drop=("optimizer_states", "lr_schedulers")), adapted


class _RunData:
    """The run's training split, read again from its data config (once, when a method asks)."""

    def __init__(self, meta: Any) -> None:
        self.meta = meta
        self._datamodule: Any = None

    def samples(self, why: str, way_out: str) -> list[Any]:
        from fishbear.engine.run_data import run_datamodule

        if self._datamodule is None:
            try:
                self._datamodule = run_datamodule(self.meta)
            except DataError as err:
                raise DataError(f"{why}, and the run's training pictures cannot be read ({err}). {way_out}") from None
        return self._datamodule.samples("train")

    def training_pictures(self, count: int) -> tuple[torch.Tensor, Any]:
        """Up to ``count`` training pictures, spread evenly, as evaluation feeds them, and their targets."""
        from fishbear.data.dataset import ImageDataset
        from fishbear.data.transforms import build_transforms
        from fishbear.engine.adapt.footage import spread_evenly
        from fishbear.kinds import get_kind

        samples = spread_evenly(self.samples("method=pseudo keeps the training pictures' labels in view",
                                             "Run where the run was trained, or give pseudo_source_weight=0."), count)
        kind, meta = get_kind(self.meta.kind), self.meta
        transform = build_transforms("valid", meta.image_size, None, kind, meta.resize, meta.preprocess)
        dataset = ImageDataset(samples, transform, kind, len(meta.classes))
        batch = kind.collate([dataset[i] for i in range(len(dataset))])
        return batch["image"], batch["target"]


def _reference(data: _RunData, transform: Any, given: Footage | None) -> torch.Tensor:
    """The training footage as the network's uint8 input: ``given``, or up to
    :data:`REFERENCE_PICTURES` of the run's training split."""
    if given is not None:
        return given.fed(transform)
    from fishbear.data.images import load_rgb
    from fishbear.engine.adapt.footage import spread_evenly

    samples = spread_evenly(data.samples("method=colour maps the new footage to the training footage's colours",
                                         "Give some of them with reference=DIR."), REFERENCE_PICTURES)
    return torch.stack([transform(image=load_rgb(s.image))["image"] for s in samples])


def _labelled(folder: str | Path, meta: Any, kind: Any, transform: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``labelled=``: footage pictures a person sorted into one folder per class (the queue
    ``pseudo`` wrote, checked), as network input and class indices."""
    from fishbear.data.images import is_image_file, load_rgb

    folder = Path(folder).expanduser()
    if not kind.sorts_frames:
        raise ConfigError(f"labelled={folder} reads pictures sorted into class folders, and a '{kind.name}' model's "
                          "labels are not one class per picture; leave labelled= out.")
    if not folder.is_dir():
        raise DataError(f"labelled={folder} is not a folder; give the doubtful/ folder adapt wrote, with its pictures in "
                        "the right class folders.")
    stray = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in meta.classes)
    if stray:
        raise DataError(f"labelled={folder}: folder(s) {', '.join(stray)} are not classes of the model "
                        f"({', '.join(meta.classes)}); move their pictures into a class folder.")
    pictures, targets = [], []
    for index, name in enumerate(meta.classes):
        for path in sorted(p for p in (folder / name).rglob("*") if p.is_file() and is_image_file(p)):
            pictures.append(transform(image=load_rgb(path))["image"])
            targets.append(index)
    if not pictures:
        raise DataError(f"labelled={folder} holds no pictures in class folders ({', '.join(meta.classes)}).")
    return torch.stack(pictures), torch.tensor(targets)


@torch.no_grad()
def _doubtful(state: Adaptation, footage: Footage, meta: Any) -> list[dict[str, Any]]:
    """The pictures ``pseudo`` puts to a person, with the adapted network's answer on each."""
    from fishbear.data.feed import Normalize

    if not state.doubtful:
        return []
    indices = [i for i, _ in state.doubtful]
    normalize = Normalize(state.mean, state.std).to(state.device)
    answers = state.kind.predictions(state.network(normalize(state.pictures[indices].to(state.device)))).cpu()
    rows = []
    for (index, doubt), answer in zip(state.doubtful, answers):
        predicted = meta.classes[int(answer.argmax())] if state.kind.sorts_frames else ""
        name = footage.names[index] if footage.names else f"picture_{index:06d}"
        rows.append({"index": index, "file": "/".join(p for p in (QUEUE, predicted, f"{name}.png") if p),
                     "predicted": predicted, "doubt": round(doubt, 5)})
    return rows


def adapt_run(cfg: Any) -> dict[str, Any]:
    """Adapt ``cfg.ckpt`` to the footage (``conf/adapt.yaml``'s settings) and write the new run
    folder; returns ``adapt.json``'s contents. ``fishbear adapt`` and ``frames adapt=true`` run it."""
    from fishbear.core.containment import is_within
    from fishbear.core.outputs import OutputFiles

    pseudo = PseudoSettings(threshold=float(cfg.pseudo_threshold), steps=int(cfg.pseudo_steps), lr=float(cfg.pseudo_lr),
                            anchor=float(cfg.pseudo_anchor), source_weight=float(cfg.pseudo_source_weight),
                            review_share=float(cfg.review_share))
    settings = AdaptSettings(methods=_methods(cfg.method), batch_size=int(cfg.batch_size),
                             bn_source_weight=float(cfg.bn_source_weight), tent_epochs=int(cfg.tent_epochs),
                             tent_lr=float(cfg.tent_lr), seed=int(cfg.seed), pseudo=pseudo)
    ckpt = Path(str(cfg.ckpt)).expanduser()
    out = Path(str(cfg.out)).expanduser() if cfg.out else Path("outputs") / "adapt" / time.strftime("%Y-%m-%d_%H-%M-%S")
    if is_within(out, ckpt.parent.parent):
        raise ConfigError(f"out={out} is inside the source run {ckpt.parent.parent}; the source run is only read. Give "
                          "another out=.")
    outputs = OutputFiles(bool(cfg.overwrite), way_out="another out=")
    outputs.check_folder(out, names=lambda p: _written(p.relative_to(out)))
    if cfg.labelled and is_within(Path(str(cfg.labelled)).expanduser(), out):
        raise ConfigError(f"labelled={cfg.labelled} is inside out={out}, which this run writes; adapt into another out= "
                          "(the first run's folder keeps the pictures the person sorted).")
    footage = footage_of(cfg)
    reference = footage_of(cfg, reference=True) if cfg.reference else None
    raw, report = adapt_checkpoint(ckpt, footage, settings, reference, str(cfg.device), cfg.labelled or None)
    buffer = io.BytesIO()
    torch.save(raw, buffer)
    outputs.write_bytes(out / "checkpoints" / "best.ckpt", buffer.getvalue())
    if report["doubtful"]:
        _write_queue(outputs, out, footage, report["doubtful"])
    outputs.write_text(out / "adapt.json", json.dumps(report, indent=2) + "\n")
    outputs.write_text(out / "adapt.md", _markdown(report))
    outputs.close()
    print(f"Adapted {ckpt} to {footage.source['pictures']} pictures of the new footage by {', '.join(settings.methods)} "
          f"in {report['seconds']:.1f} s: {out / 'checkpoints' / 'best.ckpt'}. Sort with it: fishbear frames video=... "
          f"sort_with={out / 'checkpoints' / 'best.ckpt'}{outputs.note()}")
    if report["doubtful"]:
        print(f"{len(report['doubtful'])} doubtful pictures are in {out / QUEUE} (doubtful.csv lists them): move each "
              f"misfiled one into its class folder, then adapt again with labelled={out / QUEUE} and another out=.")
    return report


def _written(relative: Path) -> bool:
    """Whether a file in the run folder is one ``adapt`` writes."""
    return relative.as_posix() in WRITTEN or (relative.parts[0] == QUEUE and relative.suffix == ".png")


def _write_queue(outputs: Any, out: Path, footage: Footage, rows: list[dict[str, Any]]) -> None:
    """The doubtful pictures as PNG files (lossless: the same pixels come back) and ``doubtful.csv``."""
    import csv

    from PIL import Image

    for row in rows:
        buffer = io.BytesIO()
        Image.fromarray(footage.pictures[row["index"]]).save(buffer, format="PNG")
        outputs.write_bytes(out / row["file"], buffer.getvalue())
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["file", "predicted", "doubt"], extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    outputs.write_text(out / "doubtful.csv", text.getvalue())


def footage_of(cfg: Any, reference: bool = False) -> Footage:
    """The footage ``frames=`` or ``video=`` names (or ``reference=``'s folder)."""
    if reference:
        return Footage.from_folder(str(cfg.reference), int(cfg.limit))
    if bool(cfg.frames) == bool(cfg.video):
        raise ConfigError("give the new footage as frames=DIR (a folder of pictures) or video=FILE, one of the two.")
    if cfg.frames:
        return Footage.from_folder(str(cfg.frames), int(cfg.limit))
    return Footage.from_video(str(cfg.video), int(cfg.every), int(cfg.limit))


def _methods(value: Any) -> tuple[str, ...]:
    items = str(value).split(",") if isinstance(value, str) else list(value)
    return tuple(str(m).strip() for m in items if str(m).strip())


def _markdown(report: dict[str, Any]) -> str:
    footage = report["footage"]
    where = footage.get("frames") or f"{footage.get('video')} (every {footage.get('every')} frames)"
    lines = ["# Adapted checkpoint", "", "| | |", "|---|---|", f"| from | {report['from']} |",
             f"| source sha256 | {report['from_sha256']} |", f"| footage | {where} |",
             f"| pictures | {footage['pictures']} of {footage['of']} |", f"| footage sha256 | {footage['sha256']} |",
             f"| methods | {', '.join(report['methods'])} |", f"| seconds | {report['seconds']} |", ""]
    for method, note in report["notes"].items():
        lines += [f"## {method}", "", "```json", json.dumps(note, indent=2), "```", ""]
    return "\n".join(lines)
