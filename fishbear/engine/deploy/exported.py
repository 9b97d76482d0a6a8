"""An export folder of ``fishbear export`` behind the predictor interface of
:mod:`fishbear.engine.inference`, so that ``predict`` and ``serve`` take a checkpoint or an export
alike."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fishbear.engine.inference import ImagePredictor, Predictor
from fishbear.kinds import Kind, get_kind
from fishbear.kinds.meta import ModelMeta


class ExportedPredictor(ImagePredictor):
    """An export folder of ``fishbear export`` (``model.onnx`` + ``export.json``) behind the same
    calls as :class:`Predictor`, answered by onnxruntime through the standalone predictor's code
    (:mod:`fishbear.engine.deploy.standalone`): what ``fishbear predict ckpt=EXPORT_DIR`` runs."""

    def __init__(self, folder: str | Path, model: str | None = None) -> None:
        from fishbear.engine.deploy.standalone import ExportError, OnnxPredictor
        from fishbear.kinds import KINDS

        try:
            self.onnx = OnnxPredictor(folder, model=model)
        except ExportError as err:
            from fishbear.core.errors import CheckpointError

            raise CheckpointError(str(err)) from None
        self.meta = ModelMeta.from_section(self.onnx.meta.get("model_meta"), Path(folder) / "export.json", KINDS)
        self.kind: Kind = get_kind(self.meta.kind)
        self.classes = list(self.meta.classes)
        self.image_size = self.meta.image_size

    def predict_batch(self, images: Sequence[Any]) -> list[dict[str, Any]]:
        return self.onnx.predict_batch([Predictor._array(image) for image in images])



def is_export_folder(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / "export.json").is_file()


def open_predictor(path: str | Path, device: str = "cpu", tta: bool = False,
                   **settings: Any) -> Predictor | ExportedPredictor:
    """A checkpoint's :class:`Predictor`, or an export folder's :class:`ExportedPredictor`
    (whose settings are the ones exported: ``settings`` must be None there, ``tta`` false)."""
    if is_export_folder(path):
        if tta:
            from fishbear.core.errors import CheckpointError

            raise CheckpointError(f"{path} is an export folder, whose graph answers each picture once; tta=true needs the "
                                  "checkpoint (ckpt=.../best.ckpt).")
        changed = sorted(k for k, v in settings.items() if v is not None)
        if changed:
            from fishbear.core.errors import CheckpointError

            raise CheckpointError(f"{path} is an export folder: its settings ({', '.join(changed)}) were fixed at "
                                  "export; export the checkpoint again to change them.")
        return ExportedPredictor(path)
    return Predictor.from_checkpoint(path, device=device, tta=tta, **settings)
