"""What a trained model carries besides its weights, typed: :class:`ModelMeta`.

A checkpoint's ``fishbear`` section is read and written here and nowhere else: the engine's
checkpoint loader returns a :class:`ModelMeta`, the tasks write one when Lightning saves, and
inference, evaluation, export and serving read its fields. Each kind's own settings (the tuned
tag thresholds, the F-beta, the void code, the detector's score threshold, the regression
values' scale) are a frozen dataclass of that kind's (``Kind.settings_type``) with one default
per setting; a command that changes one (``predict score=0.3``) passes a changed copy
(:meth:`ModelMeta.with_settings`), never writes into a loaded one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fishbear.core.errors import CheckpointError

SECTION = "fishbear"  # the checkpoint key this module owns
_REQUIRED = {"kind": str, "classes": list, "image_size": (int, list), "mean": list, "std": list, "model_cfg": dict}


@dataclass(frozen=True)
class KindSettings:
    """A kind's settings: subclasses are frozen dataclasses whose field names are their keys in
    the checkpoint's section (so checkpoints written before the types existed read the same)."""

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> KindSettings:
        values = {f.name: section[f.name] for f in fields(cls) if section.get(f.name) is not None}
        for f in fields(cls):  # lists in the checkpoint, tuples here (frozen, hashable)
            if isinstance(values.get(f.name), list):
                values[f.name] = tuple(values[f.name])
        return cls(**values)

    def to_section(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class NoSettings(KindSettings):
    """A kind with no settings of its own (classification, points)."""


@dataclass(frozen=True)
class Provenance:
    """How the weights came to be: the run they belong to (its overrides and ``.hydra`` files,
    which a resume checks), the split they were trained on (a fingerprint per split) and the
    seconds spent, summed over the processes of a resumed run; for weights ``fishbear adapt`` fitted
    to new footage, ``adapted``: the source checkpoint (path, sha256), the footage's fingerprint and
    the methods with their settings."""

    run: dict[str, Any] | None = None
    data_fingerprint: dict[str, Any] | None = None
    fit_seconds: float = 0.0
    wall_seconds: float = 0.0
    adapted: dict[str, Any] | None = None


@dataclass(frozen=True)
class ModelMeta:
    """Everything inference needs besides the weights: the task kind, the class names (index =
    output), the input size the weights were trained at, the normalisation, how a picture is
    fitted to the size (``resize``: crop, squish, pad; None: the kind's choice), the steps applied
    to every picture first (``preprocess``: ``enhance``), the network's settings (rebuilt from
    fishbear's own builders only), and the kind's settings."""

    kind: str
    classes: tuple[str, ...]
    image_size: int | tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    model_cfg: dict[str, Any]
    settings: KindSettings = field(default_factory=NoSettings)
    resize: str | None = None
    preprocess: tuple[str, ...] = ()
    data_name: str | None = None
    provenance: Provenance = field(default_factory=Provenance)

    @property
    def feed(self) -> Any:
        """How the weights were fed (:class:`fishbear.data.feed.Feed`): what an evaluation, a review
        and the predictor feed them again."""
        from fishbear.data.feed import Feed

        return Feed(self.image_size, tuple(self.mean), tuple(self.std), self.resize, tuple(self.preprocess))

    # -- reading and writing the checkpoint's section ------------------------------------------
    @classmethod
    def from_section(cls, section: Any, path: Path | str, kinds: Mapping[str, Any]) -> ModelMeta:
        """The checked meta of a checkpoint's section; ``kinds``: the kinds known (the registry,
        passed in: the kinds' package is above this module), whose ``settings_type`` reads the
        kind's settings."""
        if not isinstance(section, dict):
            raise CheckpointError(f"{path} is not a fishbear checkpoint (it has no '{SECTION}' section); "
                                  "use a checkpoint written by python -m fishbear.train.")
        for key, types in _REQUIRED.items():
            if not isinstance(section.get(key), types):
                raise CheckpointError(f"{path}: its fishbear section has no valid '{key}' ({section.get(key)!r}); "
                                      "it was not written by python -m fishbear.train, or is damaged.")
        if section["kind"] not in kinds:
            raise CheckpointError(f"{path} is a checkpoint of kind {section['kind']!r}, which this fishbear does not "
                                  f"know (known: {', '.join(kinds)}).")
        size = section["image_size"]
        return cls(
            kind=section["kind"], classes=tuple(str(c) for c in section["classes"]),
            image_size=int(size) if isinstance(size, int) else tuple(int(v) for v in size),
            mean=tuple(float(v) for v in section["mean"]), std=tuple(float(v) for v in section["std"]),
            model_cfg=dict(section["model_cfg"]), settings=kinds[section["kind"]].settings_type.from_section(section),
            resize=section.get("resize"), preprocess=tuple(section.get("preprocess") or ()),
            data_name=section.get("data_name"),
            provenance=Provenance(run=section.get("run"), data_fingerprint=section.get("data_fingerprint"),
                                  fit_seconds=float(section.get("fit_seconds") or 0.0),
                                  wall_seconds=float(section.get("wall_seconds") or 0.0),
                                  adapted=section.get("adapted")))

    @classmethod
    def read_from(cls, checkpoint: Any, path: Path | str, kinds: Mapping[str, Any]) -> ModelMeta:
        """The meta of a loaded checkpoint dict (Lightning's), checked."""
        if not isinstance(checkpoint, dict):
            raise CheckpointError(f"{path} is not a fishbear checkpoint; use one written by python -m fishbear.train.")
        return cls.from_section(checkpoint.get(SECTION), path, kinds)

    def to_section(self) -> dict[str, Any]:
        """The plain form a checkpoint stores (``torch.load(weights_only=True)`` reads it back)."""
        size = self.image_size if isinstance(self.image_size, int) else list(self.image_size)
        return {"kind": self.kind, "classes": list(self.classes), "image_size": size, "mean": list(self.mean),
                "std": list(self.std), "model_cfg": dict(self.model_cfg), "resize": self.resize,
                "preprocess": list(self.preprocess),
                "data_name": self.data_name, **self.settings.to_section(), "run": self.provenance.run,
                "data_fingerprint": self.provenance.data_fingerprint, "fit_seconds": self.provenance.fit_seconds,
                "wall_seconds": self.provenance.wall_seconds, "adapted": self.provenance.adapted}

    def write_into(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[SECTION] = self.to_section()

    # -- changed copies --------------------------------------------------------------------------
    def with_settings(self, **changes: Any) -> ModelMeta:
        """A copy whose kind settings have ``changes`` (None values: unchanged)."""
        given = {k: v for k, v in changes.items() if v is not None}
        unknown = set(given) - {f.name for f in fields(self.settings)}
        if unknown:
            raise CheckpointError(f"a '{self.kind}' model has no setting {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, settings=dataclasses.replace(self.settings, **given)) if given else self

    def replace(self, **changes: Any) -> ModelMeta:
        return dataclasses.replace(self, **changes)
