"""A fishbear model exported to ONNX, answering without PyTorch, Lightning, Hydra or fishbear.

``fishbear export`` copies this file into the export folder as ``onnx_predictor.py``, beside the
command that uses it (``predict.py``, :mod:`fishbear.engine.deploy.standalone_cli`); it needs
onnxruntime, numpy, Pillow and OpenCV only (the resize is done outside the graph with the OpenCV
calls albumentations makes in training). ``fishbear predict ckpt=EXPORT_DIR`` and ``serve`` answer
through it too. ``export.json`` says what the graph expects and what is done outside it, and names
the model file inside the folder with its sha256: a model that is not the one exported is refused.

    from onnx_predictor import OnnxPredictor
    OnnxPredictor(".").predict("photo.jpg")
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".ppm", ".pgm"})
MODEL_FILE, META_FILE = "model.onnx", "export.json"
MAX_FIT_PIXELS = 50_000_000  # as fishbear.core.geometry's


class ExportError(ValueError):
    """An export folder that is not what was exported (a changed model, a model outside it)."""


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _grey_scale(values: np.ndarray, mode: str) -> float:
    if mode.startswith("I;16"):
        return 65535.0
    top = float(values.max()) if values.size else 0.0
    for high in (1.0,) if mode == "F" else (255.0, 65535.0):
        if top <= high:
            return high
    return max(top, 1e-12)


def as_rgb(opened: Image.Image) -> np.ndarray:
    """H x W x 3 uint8 as the picture looks, by fishbear's one rule (``fishbear.data.images.as_rgb``):
    EXIF orientation applied; 16-bit, 32-bit and float greys scaled by their range, NaN black;
    grey, palette, CMYK and alpha images as RGB."""
    image = ImageOps.exif_transpose(opened)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        grey = np.clip(np.round(values / _grey_scale(values, image.mode) * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as opened:
        return as_rgb(opened)


def fit_problem(height: int, width: int, meta: dict[str, Any]) -> str | None:
    """Why the picture cannot be fitted to the model (``fishbear.core.geometry.fit_problem``)."""
    model_h, model_w = meta["input_size"]
    if height < 1 or width < 1:
        return f"it has no pixels ({width} x {height})"
    if meta["resize"] not in ("crop", "pad"):
        return None
    pick = max if meta["resize"] == "crop" else min
    scale = pick(model_h / height, model_w / width)
    between = (max(1, round(height * scale)), max(1, round(width * scale)))
    if between[0] * between[1] > MAX_FIT_PIXELS:
        return (f"its {width} x {height} pixels are too far from the model's {model_w} x {model_h} proportions: fitting "
                f"it by {meta['resize']} would make a {between[1]} x {between[0]} picture first")
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_file(folder: Path, meta: dict[str, Any], name: str | None = None) -> Path:
    """The model file of the export folder: a plain name inside it, whose sha256 is the one
    ``export.json`` recorded at export (when it recorded one)."""
    name = name or meta.get("model", MODEL_FILE)
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..") \
            or not name.endswith(".onnx"):
        raise ExportError(f"{folder / META_FILE} names the model {name!r}: a model is a .onnx file inside the export "
                          "folder. Export the checkpoint again.")
    path = folder / name
    if path.is_symlink() or not path.is_file():
        raise ExportError(f"{path} is missing or a link: an export folder holds its model itself. Export the "
                          "checkpoint again.")
    recorded = (meta.get("files") or {}).get(name)
    if recorded is not None and sha256_of(path) != recorded:
        raise ExportError(f"{path} is not the model that was exported (its sha256 differs from the one in "
                          f"{META_FILE}): nothing is answered with it. Export the checkpoint again (fishbear export).")
    return path


def _enhance(image: np.ndarray) -> np.ndarray:
    """Grey-world white balance, then CLAHE (clip 2, 8 x 8 tiles) on the L channel of LAB."""
    import cv2

    pixels = image.astype(np.float32)
    means = pixels.reshape(-1, 3).mean(axis=0)
    balanced = np.clip(pixels * (means.mean() / np.maximum(means, 1.0)), 0, 255).astype(np.uint8)
    lab = cv2.cvtColor(balanced, cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


PREPROCESS = {"enhance": _enhance}


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def fit(image: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """The picture fitted to the model's size as fishbear's evaluation does: ``crop`` (short side
    scaled to cover, centre cut out), ``squish`` (the whole frame resized) or ``pad`` (scaled to fit
    inside, letterboxed with black)."""
    import cv2

    height, width = meta["input_size"]
    h, w = image.shape[:2]
    if meta["resize"] == "squish":
        return _resize(image, height, width)
    if meta["resize"] == "pad":
        scale = min(height / h, width / w)
        scaled = _resize(image, max(1, round(h * scale)), max(1, round(w * scale)))
        sh, sw = scaled.shape[:2]
        top, left = int((height - sh) / 2.0) if sh < height else 0, int((width - sw) / 2.0) if sw < width else 0
        return cv2.copyMakeBorder(scaled, top, max(0, height - sh - top), left, max(0, width - sw - left),
                                  cv2.BORDER_CONSTANT, value=(0, 0, 0))
    scale = max(height / h, width / w)
    scaled = _resize(image, max(1, round(h * scale)), max(1, round(w * scale)))
    sh, sw = scaled.shape[:2]
    y0, x0 = (sh - height) // 2, (sw - width) // 2
    return scaled[y0:y0 + height, x0:x0 + width]


def prepare(image: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """What the graph's ``image`` input takes for one picture: 3 x H x W float32 of 0..255 values."""
    for step in meta.get("preprocess", []):
        image = PREPROCESS[step](image)
    return np.ascontiguousarray(fit(image, meta).transpose(2, 0, 1)).astype(np.float32)


# -- the readings of the graph's outputs, one per kind: the columns fishbear predict writes ------------------
def _a_class(outputs: dict[str, np.ndarray], i: int, size: tuple[int, int], meta: dict[str, Any]) -> dict[str, Any]:
    classes, row = meta["classes"], outputs["probabilities"][i]
    best = int(row.argmax())
    return {"label": classes[best], "probability": float(row[best]),
            "probabilities": {c: float(p) for c, p in zip(classes, row)},
            "summary": f"{classes[best]}\t{row[best]:.4f}",
            "columns": {"label": classes[best], "probability": f"{row[best]:.6f}",
                        **{f"p_{c}": f"{p:.6f}" for c, p in zip(classes, row)}}}


def _tags(outputs: dict[str, np.ndarray], i: int, size: tuple[int, int], meta: dict[str, Any]) -> dict[str, Any]:
    classes, row = meta["classes"], outputs["probabilities"][i]
    settings = meta["settings"]
    cut = np.asarray(settings.get("thresholds") or [settings["threshold"]] * len(classes))
    tags = [c for c, p, t in zip(classes, row, cut) if p > t]
    return {"tags": tags, "probabilities": {c: float(p) for c, p in zip(classes, row)},
            "summary": " ".join(f"{c}:{p:.2f}" for c, p, t in zip(classes, row, cut) if p > t) or "(no tag)",
            "columns": {"tags": " ".join(tags), **{f"p_{c}": f"{p:.6f}" for c, p in zip(classes, row)}}}


def _values(outputs: dict[str, np.ndarray], i: int, size: tuple[int, int], meta: dict[str, Any]) -> dict[str, Any]:
    names, row = meta["classes"], outputs["values"][i]
    return {"values": {n: float(v) for n, v in zip(names, row)},
            "summary": "  ".join(f"{n} {v:.3f}" for n, v in zip(names, row)),
            "columns": {n: f"{v:.4f}" for n, v in zip(names, row)}}


def _coordinates(outputs: dict[str, np.ndarray], i: int, size: tuple[int, int], meta: dict[str, Any]) -> dict[str, Any]:
    names, points = meta["classes"], outputs["points"][i]
    return {"points": {n: (float(x), float(y)) for n, (x, y) in zip(names, points)},
            "summary": "  ".join(f"{n} ({x:.1f}, {y:.1f})" for n, (x, y) in zip(names, points)),
            "columns": {key: f"{value:.2f}" for n, (x, y) in zip(names, points)
                        for key, value in ((f"{n}_x", x), (f"{n}_y", y))}}


def _mask(outputs: dict[str, np.ndarray], i: int, size: tuple[int, int], meta: dict[str, Any]) -> dict[str, Any]:
    """Scores resized to the picture's size (bilinear, half-pixel centres) before the argmax."""
    import cv2

    classes, scores = meta["classes"], outputs["scores"][i]
    height, width = size
    resized = np.stack([cv2.resize(channel, (width, height), interpolation=cv2.INTER_LINEAR) for channel in scores])
    mask = resized.argmax(0).astype(np.uint8)
    share = np.bincount(mask.ravel(), minlength=len(classes)) / mask.size
    top = np.argsort(share)[::-1][:3]
    return {"mask": mask, "summary": ", ".join(f"{classes[k]} {share[k]:.0%}" for k in top if share[k] > 0),
            "columns": {f"share_{c}": f"{s:.4f}" for c, s in zip(classes, share)}}


def _boxes(outputs: dict[str, np.ndarray], i: int, size: tuple[int, int], meta: dict[str, Any]) -> dict[str, Any]:
    """One picture's boxes (a graph of one picture a run), from the score threshold on, best first:
    ``label`` and ``probability`` are the top box's class and score, or nothing and one minus the top score."""
    names, threshold = meta["classes"], float(meta["settings"]["score_threshold"])
    scores = outputs["scores"].astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    kept = [{"label": names[int(outputs["labels"][k])], "score": float(scores[k]),
             "box": [round(float(v), 1) for v in outputs["boxes"][k]]} for k in order if scores[k] >= threshold]
    top = float(scores[order[0]]) if len(order) else 0.0
    nothing = f"no_{names[0]}" if len(names) == 1 else "nothing"
    return {
        "boxes": kept, "top_score": top, "label": kept[0]["label"] if kept else nothing,
        "probability": kept[0]["score"] if kept else 1.0 - top,
        "summary": (f"{len(kept)} box(es): " + ", ".join(f"{k['label']} {k['score']:.2f} {k['box']}" for k in kept))
        if kept else f"no box scored {threshold} or more (best {top:.2f})",
        "rows": [{"label": k["label"], "score": f"{k['score']:.4f}",
                  **{name: f"{v:.1f}" for name, v in zip(("xmin", "ymin", "xmax", "ymax"), k["box"])}} for k in kept]
        or [{"label": "", "score": "", "xmin": "", "ymin": "", "xmax": "", "ymax": ""}],
        "columns": {"boxes": str(len(kept)), "top_label": kept[0]["label"] if kept else "", "top_score": f"{top:.4f}"},
    }


# export.json's "reading" (each kind's ``export_reading``) -> what turns the graph's outputs into its answer
READINGS = {"class": _a_class, "tags": _tags, "values": _values, "coordinates": _coordinates, "mask": _mask,
            "boxes": _boxes}


def read_meta(folder: Path) -> dict[str, Any]:
    """``export.json``, checked for what this file reads of it."""
    path = Path(folder) / META_FILE
    if path.is_symlink():
        raise ExportError(f"{path} is a link: an export folder holds its metadata itself. Export the checkpoint again.")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ExportError(f"{path} cannot be read as an export's metadata ({err}). Export the checkpoint again.") from None
    wanted = {"kind": str, "classes": list, "input_size": list, "resize": str, "reading": str}
    wrong = [key for key, kind in wanted.items() if not isinstance(meta.get(key) if isinstance(meta, dict) else None, kind)]
    if wrong or meta["reading"] not in READINGS or len(meta["input_size"]) != 2:
        raise ExportError(f"{path} is not an export's metadata (missing or malformed: {', '.join(wrong) or 'reading'}). "
                          "Export the checkpoint again.")
    return meta


class OnnxPredictor:
    """``model.onnx`` and ``export.json`` of an export folder; images in, the kind's readings out."""

    def __init__(self, folder: str | Path, threads: int | None = None, model: str | None = None) -> None:
        import onnxruntime as ort

        self.folder = Path(folder)
        self.meta = read_meta(self.folder)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.model = model_file(self.folder, self.meta, model)
        self.session = ort.InferenceSession(str(self.model), options, providers=["CPUExecutionProvider"])
        self.kind = self.meta["kind"]
        self.answer = READINGS[self.meta["reading"]]

    def run(self, batch: np.ndarray, sizes: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's outputs for N prepared pictures and their original (height, width)."""
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(None, {"image": batch, "original_size": sizes})))

    def predict_batch(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
        batch = np.stack([prepare(image, self.meta) for image in images])
        sizes = np.array([image.shape[:2] for image in images], dtype=np.int64)
        if self.meta.get("batch") == 1:  # a graph of one picture a run (boxes): its outputs are that picture's
            return [self.answer(self.run(batch[i:i + 1], sizes[i:i + 1]), i, tuple(int(v) for v in sizes[i]), self.meta)
                    for i in range(len(images))]
        outputs = self.run(batch, sizes)
        return [self.answer(outputs, i, tuple(int(v) for v in sizes[i]), self.meta) for i in range(len(images))]

    def predict(self, image: str | Path | np.ndarray) -> dict[str, Any]:
        return self.predict_batch([load_rgb(Path(image)) if isinstance(image, (str, Path)) else image])[0]

    def predict_files(self, paths: Iterable[Path], batch_size: int = 32) -> Iterator[tuple[Path, dict[str, Any]]]:
        paths = list(paths)
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            yield from zip(chunk, self.predict_batch([load_rgb(p) for p in chunk]))
