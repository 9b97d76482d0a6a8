"""``python predict.py IMAGE_OR_FOLDER [--output CSV] [--batch-size 32] [--masks DIR] [--overwrite]``:
a fishbear model exported to ONNX, answering without PyTorch, Lightning, Hydra or fishbear.

``fishbear export`` copies this file into the export folder as ``predict.py``, beside
``onnx_predictor.py`` (:mod:`fishbear.engine.deploy.standalone`), which answers. It writes
``fishbear predict``'s CSV (the same columns in the same order) beside a folder as
``predictions.csv``, beside an image as ``<stem>.predictions.csv``, or to ``--output`` (a detector:
a row per box, and each picture drawn with its boxes and its Pascal VOC XML in ``--boxes``); it replaces
no file unless ``--overwrite``, writes through no link (a file is written beside its place, then
renamed over it), and skips, naming it, a picture that does not decode or cannot be fitted to the
model.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from onnx_predictor import ExportError, OnnxPredictor, fit_problem, is_image_file
from PIL import Image


def _mask_png(mask: np.ndarray, colours: list[int]) -> bytes:
    picture = Image.fromarray(mask, mode="P")
    picture.putpalette(colours)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(picture: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _voc(image: Path, width: int, height: int, boxes: list[dict[str, Any]]) -> str:
    """Pascal VOC XML as LabelImg writes it (fishbear predict's format=voc), corners to whole pixels."""
    import xml.etree.ElementTree as ET

    root = ET.Element("annotation")
    for tag, value in (("folder", image.parent.name), ("filename", image.name), ("path", str(image.resolve()))):
        ET.SubElement(root, tag).text = value
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(int(value))
    ET.SubElement(root, "segmented").text = "0"
    for box in boxes:
        obj = ET.SubElement(root, "object")
        for tag, value in (("name", box["label"]), ("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
            ET.SubElement(obj, tag).text = value
        corners = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box["box"]):
            ET.SubElement(corners, tag).text = str(int(round(float(value))))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _box_files(path: Path, result: dict[str, Any], folder: Path, key: str, overwrite: bool) -> dict[str, str]:
    """A detector's picture with its boxes drawn and its Pascal VOC XML, as fishbear predict writes them."""
    from onnx_predictor import load_rgb
    from PIL import ImageDraw

    picture = Image.fromarray(load_rgb(path))
    pen = ImageDraw.Draw(picture)
    width = max(2, round(max(picture.size) / 300))
    for box in result["boxes"]:
        pen.rectangle(box["box"], outline=(255, 64, 0), width=width)
        pen.text((box["box"][0] + width, box["box"][1] + width), f"{box['label']} {box['score']:.2f}", fill=(255, 64, 0))
    drawn, xml = folder / f"{key}.boxes.jpg", folder / f"{key}.xml"
    _write(drawn, _jpeg(picture, 90), overwrite)
    _write(xml, _voc(path, picture.width, picture.height, result["boxes"]).encode("utf-8"), overwrite)
    return {"drawn": str(drawn), "voc_xml": str(xml)}


def _readable(files: list[Path], meta: dict[str, Any]) -> list[Path]:
    """The files that decode and fit the model; the others named in a warning and skipped."""
    kept = []
    for path in files:
        try:
            with Image.open(path) as image:
                width, height = image.size
                if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                    width, height = height, width
                problem = fit_problem(height, width, meta)
                if problem is None:
                    image.load()
        except Exception as err:  # noqa: BLE001 (any file that does not decode is skipped and named)
            problem = f"{type(err).__name__}: {err}"
        if problem:
            print(f"warning: skipped {path} ({problem})", file=sys.stderr)
        else:
            kept.append(path)
    return kept


def _write(path: Path, data: bytes, overwrite: bool) -> None:
    """``data`` into a file beside ``path``, renamed over it: never written through a link there
    (nor a dangling one), never over an existing file unless ``overwrite``."""
    if os.path.lexists(path) and not overwrite:
        raise SystemExit(f"error: {path} exists; give another output or --overwrite")
    if path.is_symlink() or path.is_dir():
        raise SystemExit(f"error: {path} is a link or a folder; nothing was written through it. Give another output.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staged = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(staged, path)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None, folder: Path | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="an image, or a folder of images (searched recursively)")
    for flag, kind, default, text in (("--output", Path, None, "the CSV (default: beside the input)"),
                                      ("--batch-size", int, 32, "pictures a run of the graph"),
                                      ("--masks", Path, None, "segmentation: the folder of the masks"),
                                      ("--boxes", Path, None, "detection: the folder of the drawn boxes and VOC XML"),
                                      ("--threads", int, None, "onnxruntime's intra-op threads"),
                                      ("--model", str, None, "another model file of the folder (model.int8.onnx)")):
        parser.add_argument(flag, type=kind, default=default, help=text)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing CSV or mask")
    args = parser.parse_args(argv)
    try:
        predictor = OnnxPredictor(folder or Path(__file__).resolve().parent, args.threads, args.model)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    source = args.input
    if source.is_dir():
        files, default, base = sorted(p for p in source.rglob("*") if p.is_file() and is_image_file(p)), \
            source / "predictions.csv", source
    elif source.is_file():
        files, default, base = [source], source.with_suffix(".predictions.csv"), source.parent
    else:
        raise SystemExit(f"error: {source} is neither an image nor a folder")
    masks = args.masks or base / "predicted_masks"
    boxes = args.boxes or base / "predicted_boxes"
    written = {"mask": masks, "boxes": boxes}.get(predictor.meta["reading"])
    if written is not None:  # not the pictures an earlier run wrote
        files = [p for p in files if written.resolve() not in p.resolve().parents]
    files = _readable(files, predictor.meta)
    if not files:
        raise SystemExit(f"error: {source} holds no readable image")
    output = args.output or default
    if os.path.lexists(output) and not args.overwrite:
        raise SystemExit(f"error: {output} exists; give --output elsewhere or --overwrite")
    rows = []
    for path, result in predictor.predict_files(files, args.batch_size):
        print(f"{path}\t{result['summary']}")
        extra = {}
        if "mask" in result:
            key = path.relative_to(base).with_suffix("").as_posix() if base in path.parents else path.stem
            target = masks / f"{key}_P.png"
            _write(target, _mask_png(result["mask"], predictor.meta["palette"]), args.overwrite)
            extra = {"mask": str(target)}
        if "boxes" in result:
            key = path.relative_to(base).with_suffix("").as_posix() if base in path.parents else path.stem
            extra = _box_files(path, result, boxes, key, args.overwrite)
        rows += [{"file": str(path), **extra, **cells} for cells in result.get("rows", [result["columns"]])]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    _write(output, text.getvalue().encode("utf-8"), args.overwrite)
    print(f"Predictions for {len(files)} images: {output}")
    return output


if __name__ == "__main__":
    main()
