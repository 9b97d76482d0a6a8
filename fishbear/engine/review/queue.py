"""What a person should label next: unlabelled pictures (a folder, or the frames ``fishbear frames``
wrote) ranked for labelling by ``fishbear review run=RUN unlabelled=DIR rank=uncertain``.

Uncertainty first: the pictures the run's model is least sure of (:meth:`Kind.doubt`) teach it
most. With a diversity rule: a video's visit gives twenty near-identical frames, all equally
doubtful, and twenty cards of one visit buy one card's worth of learning. Going down the
uncertainty order, a picture is passed over while what the network sees in it (its last layer's
inputs, :mod:`fishbear.engine.features`, centred over the pictures) is within ``similar``
(cosine) of a picture already queued. A decision on a card labels the picture into the run's dataset: ``apply`` copies it into
the class folder (``keep``: the model's answer is right; a relabel: that class; ``remove``: not
wanted), and ``undo`` takes the copies out again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fishbear.core.errors import DataError

REFUSAL = ("rank=uncertain compares pictures by what the network's last layer sees, and this network's answer is not "
           "that layer's output; label the pictures with fishbear frames sort_with= and review frames= instead.")


def diverse_order(doubt: np.ndarray, embeddings: np.ndarray, count: int, similar: float) -> list[int]:
    """Up to ``count`` picture indices, the most doubtful first (ties by position), each passed
    over while its cosine similarity to one already chosen is ``similar`` or more."""
    vectors = np.asarray(embeddings, dtype=np.float64).reshape(len(doubt), -1)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    chosen: list[int] = []
    for index in np.lexsort((np.arange(len(doubt)), -np.asarray(doubt, dtype=np.float64))):
        if len(chosen) >= count:
            break
        if chosen and float((vectors[chosen] @ vectors[index]).max()) >= similar:
            continue
        chosen.append(int(index))
    return chosen


def unlabelled_items(run_dir: Path, folder: Path, count: int, similar: float) -> Any:
    """The review set of the unlabelled pictures under ``folder``, queued for labelling into the
    dataset of the run at ``run_dir``."""
    import torch

    from fishbear.data.feed import Normalize
    from fishbear.data.images import is_image_file, load_rgb
    from fishbear.data.transforms import build_transforms
    from fishbear.engine.checkpoint import load_checkpoint, network_from_checkpoint
    from fishbear.engine.features import last_layer, layer_inputs
    from fishbear.engine.review.items import Item, ReviewSet, class_folders, training_folder
    from fishbear.engine.run_data import run_datamodule
    from fishbear.kinds import get_kind

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"unlabelled={folder} is not a folder; give a folder of pictures to label (for a video, "
                        "fishbear frames video=... out=DIR writes its frames).")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p) and "review" not in
                   p.relative_to(folder).parts[:1])
    if not files:
        raise DataError(f"unlabelled={folder} holds no pictures (.jpg, .png, ...).")
    checkpoint = load_checkpoint(Path(run_dir) / "checkpoints" / "best.ckpt")
    meta, kind = checkpoint.meta, get_kind(checkpoint.meta.kind)
    if not kind.reviews_labels or not kind.sorts_frames:
        raise DataError(f"{run_dir} is a '{meta.kind}' run; rank=uncertain labels pictures into class folders, one class "
                        "per picture.")
    datamodule = run_datamodule(meta)
    depth, folder_of = class_folders(datamodule)
    network = network_from_checkpoint(checkpoint).eval()
    layer = last_layer(network)
    if layer is None:
        raise DataError(REFUSAL)
    transform = build_transforms("predict", meta.image_size, None, kind, meta.resize, meta.preprocess)
    normalize = Normalize(meta.mean, meta.std)

    def batches() -> Any:
        for start in range(0, len(files), 32):
            yield normalize(torch.stack([transform(image=load_rgb(p))["image"] for p in files[start:start + 32]]))

    inputs, outputs = layer_inputs(network, layer, batches(), REFUSAL)
    doubt = kind.doubt(outputs).numpy()
    probabilities = kind.predictions(outputs).numpy()
    features = inputs.flatten(1).numpy()
    # centred over the pool: after a ReLU every feature is positive, and any two pictures look alike
    chosen = diverse_order(doubt, features - features.mean(axis=0, keepdims=True), count, similar)
    classes = list(meta.classes)
    items = []
    for index in chosen:
        row = probabilities[index]
        call = classes[int(row.argmax())]
        items.append(Item(files[index].relative_to(folder).as_posix(), call, call, float(row.max()), float(row.max()),
                          round(float(doubt[index]), 5), note="unlabelled",
                          probabilities=[float(v) for v in row]))
    return ReviewSet(folder, classes, items, f"unlabelled {folder}: {len(items)} of {len(files)} pictures to label into "
                     f"{training_folder(datamodule)}, the least sure first, no two alike (similar={similar})", depth,
                     folder_of, into=training_folder(datamodule), dataset_root=Path(datamodule.root))
