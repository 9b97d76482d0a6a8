"""Inference from a checkpoint alone: the checkpoint carries the class names, the task kind, the
image size, the normalisation statistics and the model config, so nothing else has to match.

    predictor = Predictor.from_checkpoint("outputs/2026-11-22/23-38-27/checkpoints/best.ckpt")
    predictor.predict("photo.jpg")   # {'label': 'star', 'probability': 0.98, 'probabilities': {...}}
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

from fishbear.core.tensors import to_cpu
from fishbear.data.feed import to_device_images
from fishbear.data.images import as_rgb, load_rgb
from fishbear.data.transforms import build_transforms
from fishbear.engine.checkpoint import load_checkpoint, network_from_checkpoint
from fishbear.kinds import Kind, get_kind
from fishbear.kinds.meta import ModelMeta

K = TypeVar("K")


class ImagePredictor:
    """What every predictor offers from its ``predict_batch``: one image, a lazy stream, files;
    and what a command reads of it (the kind, for the files it writes, and the model's meta)."""

    kind: Kind
    meta: ModelMeta

    def predict_batch(self, images: Sequence[Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def predict(self, image: str | Path | Image.Image | np.ndarray) -> dict[str, Any]:
        """The prediction for one image (a path, a PIL image or an H x W x 3 array)."""
        return self.predict_batch([image])[0]

    def predict_stream(self, items: Iterable[tuple[K, Any]], batch_size: int = 32) -> Iterator[tuple[K, dict[str, Any]]]:
        """Predictions for ``(key, image)`` pairs in batches, keys passed through: file paths for
        folders, frame numbers for videos; lazy, so a long video is never held in memory."""
        pairs = iter(items)
        while chunk := list(islice(pairs, batch_size)):
            keys, images = zip(*chunk)
            yield from zip(keys, self.predict_batch(list(images)))

    def predict_files(self, paths: Iterable[Path], batch_size: int = 32) -> Iterator[tuple[Path, dict[str, Any]]]:
        return self.predict_stream(((path, path) for path in paths), batch_size)


class Predictor(ImagePredictor):
    """A network and its :class:`~fishbear.kinds.meta.ModelMeta`: images in, the kind's readings out."""

    def __init__(self, network: torch.nn.Module, meta: ModelMeta, device: str = "cpu") -> None:
        self.meta = meta
        self.kind: Kind = get_kind(meta.kind)
        self.classes: list[str] = list(meta.classes)
        self.image_size: int | tuple[int, int] = meta.image_size
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.transform = build_transforms("predict", self.image_size, None, self.kind, meta.resize, meta.preprocess)
        self.normalize = meta.feed.normalize().to(self.device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", kind: Kind | str | None = None, tta: bool = False,
                        **settings: Any) -> Predictor:
        """``kind`` refuses a checkpoint of another task kind; ``tta``: each picture and its mirror
        image, the answers merged (:mod:`fishbear.engine.mirror`); ``settings`` change the kind's
        settings for this predictor (``score_threshold=0.3``; None: the checkpoint's)."""
        checkpoint = load_checkpoint(path, kind)
        network = network_from_checkpoint(checkpoint)
        if tta:
            from fishbear.engine.mirror import MirrorAveraged

            network = MirrorAveraged(network, get_kind(checkpoint.meta.kind), checkpoint.meta)
        return cls(network, checkpoint.meta.with_settings(**settings), device)

    @staticmethod
    def _array(image: str | Path | Image.Image | np.ndarray) -> np.ndarray:
        if isinstance(image, (str, Path)):
            return load_rgb(image)
        if isinstance(image, Image.Image):
            return as_rgb(image)
        return np.asarray(image)

    @torch.inference_mode()
    def predict_batch(self, images: Sequence[Any]) -> list[dict[str, Any]]:
        """The kind's reading of each image (``Kind.interpret``): a class, tags, a mask at the
        image's own size, points or boxes in its own pixels, values."""
        arrays = [self._array(image) for image in images]
        # uint8 to the device (a quarter of float32's bytes), normalised there, as in training
        batch = torch.stack([self.transform(image=array)["image"] for array in arrays]).to(self.device)
        predictions = to_cpu(self.kind.predictions(self.network(to_device_images(batch, self.normalize))))
        return self.kind.interpret(predictions, [a.shape[:2] for a in arrays], self.meta)
