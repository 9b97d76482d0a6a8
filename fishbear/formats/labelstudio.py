"""Label Studio JSON: the tasks a Label Studio project imports and exports (its "JSON" export, not
"JSON-MIN"). A task is ``{"data": {"image": ...}, "annotations": [...], "predictions": [...]}``;
a box is a ``rectanglelabels`` result whose ``value`` holds ``x, y, width, height`` in percent of
the image's ``original_width`` / ``original_height`` (and a ``rotation`` in degrees about the box's
top-left corner: read as the box around the turned rectangle), with a ``score`` in predictions.

Written by ``predict format=labelstudio`` (the pre-labelling loop: the predictions as
``predictions``, scored, so Label Studio sorts tasks by them) and ``convert dst_format=labelstudio``
(a dataset's boxes as ``annotations``); read back, after correction, from the project's export.

Traps of real exports: an uploaded image is ``/data/upload/<project>/<8 hex>-<name>`` (Label Studio
prefixes the name; the reader finds ``<name>``), a local file ``/data/local-files/?d=<path>``, a
cloud one a URL; a task with several annotations is read from its latest that was not cancelled;
a task nobody annotated is unlabelled (left out, counted), while an annotation with no box marks a
negative. ``image_prefix`` (writing) is what ``data.image`` starts with, for the way the images
are served to Label Studio (e.g. ``/data/local-files/?d=fish/``); by default the path relative to
the tasks file.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from fishbear.core.errors import DataError
from fishbear.data.boxes import Boxes, image_size
from fishbear.data.label_files import read_label_json, structure_of
from fishbear.formats.base import BoxLabelWriter, LabelFileBoxReader, LabelFormat

log = logging.getLogger(__name__)
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio's prefix of an uploaded file's name
SOURCES = ("annotations", "predictions")


def _image_path(reference: str) -> str:
    """The file path a task's ``data.image`` refers to: a local-files URL's ``d``, a URL's path,
    or the text as it is."""
    parsed = urlparse(reference)
    if "d" in parse_qs(parsed.query) and "local-files" in parsed.path:
        return unquote(parse_qs(parsed.query)["d"][0])
    if parsed.scheme in ("http", "https", "s3", "gs", "azure-blob") or parsed.path.startswith("/data/"):
        return unquote(parsed.path)
    return unquote(reference)


def _box(value: dict[str, Any], width: float, height: float) -> tuple[float, float, float, float]:
    """Percent ``x, y, width, height`` (turned by ``rotation`` degrees about the top-left corner)
    as pixel corners of the box around it."""
    x, y = float(value["x"]) * width / 100, float(value["y"]) * height / 100
    w, h = float(value["width"]) * width / 100, float(value["height"]) * height / 100
    angle = math.radians(float(value.get("rotation") or 0.0))
    if not angle:
        return x, y, x + w, y + h
    cos, sin = math.cos(angle), math.sin(angle)
    corners = [(x + dx * cos - dy * sin, y + dx * sin + dy * cos) for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class LabelStudioReader(LabelFileBoxReader):
    """``json``: the exported tasks under the root; ``images``: the folder holding the images,
    found by the name in each task's ``data.image`` (``image_key``). ``source``: ``annotations``
    (people's labels) or ``predictions`` (what a model proposed); ``from_name``: read only the
    results of this control (None: every ``rectanglelabels`` result). Label Studio shows photos
    upright (a browser); ``original_width``/``original_height`` tell the frame."""

    json: str = "tasks.json"
    image_key: str = "image"
    source: str = "annotations"
    from_name: str | None = None

    def read(self, root: Path) -> tuple[list[Any], str]:
        path = root / self.json
        if self.source not in SOURCES:
            raise DataError(f"data.reader.source={self.source!r}: use annotations or predictions.")
        tasks = read_label_json(path, "data.reader.json", "Label Studio")
        if isinstance(tasks, dict):  # one task, as the API returns it
            tasks = [tasks]
        if not isinstance(tasks, list):
            raise DataError(f"{path}: a Label Studio export is a list of tasks, found {type(tasks).__name__}.")
        entries, unlabelled, seen = [], 0, {}
        with structure_of(path, "Label Studio JSON export"):
            for number, task in enumerate(tasks):
                where = f"task {task.get('id', number)}"
                result = self._result(task)
                if result is None:
                    unlabelled += 1
                    continue
                reference = task["data"][self.image_key]
                name = _image_path(str(reference))
                bare = Path(name).name
                image = self.find_image(root, name, path, f"{where} ({self.image_key}={reference!r})",
                                        (bare, UPLOAD_PREFIX.sub("", bare)))
                if image is None:
                    raise DataError(f"{path}: {where} names image {reference!r}, which is not in {root / self.images} "
                                    f"(looked for {name!r} and {bare!r}); set data.reader.images to their folder.")
                if image in seen:
                    raise DataError(f"{path}: {where} and task {seen[image]} are both for {image.name}; one image, one "
                                    "task (export the project again, or remove the duplicate).")
                seen[image] = task.get("id", number)
                entries.append((image, *self._boxes(result, image, f"{path}, {where}")))
        if unlabelled:
            log.info("%s: %d task(s) have no %s and are left out (unlabelled)", path, unlabelled, self.source)
        if not entries:
            raise DataError(f"{path}: none of its {len(tasks)} task(s) has {self.source}; label some in Label Studio and "
                            "export again, or set data.reader.source.")
        return entries, str(path)

    def _result(self, task: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The results of the task's latest annotation that was not cancelled (or its first prediction)."""
        found = [a for a in task.get(self.source) or [] if not a.get("was_cancelled")]
        if not found:
            return None
        if self.source == "annotations":
            found.sort(key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), str(a.get("id", ""))))
            return list(found[-1].get("result") or [])
        return list(found[0].get("result") or [])

    def _boxes(self, result: list[dict[str, Any]], image: Path, where: str) -> tuple[Boxes, tuple[float, float] | None]:
        """The boxes of a task's result in pixels, and the image size they were drawn on."""
        rows = []
        size = recorded = None
        for i, item in enumerate(result):
            if item.get("type") != "rectanglelabels" or (self.from_name and item.get("from_name") != self.from_name):
                continue
            value = item.get("value") or {}
            labels = value.get("rectanglelabels") or []
            if not labels:
                raise DataError(f"{where}, result {i}: a rectangle without a label; give every box its class.")
            width, height = item.get("original_width"), item.get("original_height")
            if not width or not height:
                size = size or image_size(image)
                width, height = size
            else:
                recorded = recorded or (width, height)
            try:
                rows.append((*_box(value, float(width), float(height)), str(labels[0]), False))
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{where}, result {i}: value needs x, y, width and height in percent "
                                f"(got {value!r}).") from None
        return Boxes.of(rows), recorded


class LabelStudioWriter(BoxLabelWriter):
    """A tasks file (``tasks.json``) Label Studio imports, with ``label_config.xml``, the
    labelling interface for its classes (paste it into the project's settings)."""

    IMAGES = "images"
    LABELS = "."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tasks: list[dict[str, Any]] = []

    def add(self, image: Path, key: str, boxes: Boxes, scores: Sequence[float] | None = None) -> dict[str, str]:
        placed, name = self.place(image, key)
        width, height = image_size(placed)
        reference = f"{self.image_prefix}{self.IMAGES}/{name}" if self.placing and not self.image_prefix else \
            f"{self.image_prefix}{name}"
        results = []
        for i, ((x0, y0, x1, y1), label) in enumerate(zip(boxes.xyxy.tolist(), boxes.labels)):
            result = {"id": f"r{len(self._tasks)}_{i}", "type": "rectanglelabels", "from_name": "label",
                      "to_name": "image", "original_width": int(width), "original_height": int(height),
                      "image_rotation": 0,
                      "value": {"x": x0 / width * 100, "y": y0 / height * 100, "width": (x1 - x0) / width * 100,
                                "height": (y1 - y0) / height * 100, "rotation": 0, "rectanglelabels": [label]}}
            if scores is not None:
                result["score"] = round(float(scores[i]), 4)
            results.append(result)
        task: dict[str, Any] = {"data": {"image": reference}}
        if scores is None:
            task["annotations"] = [{"result": results}]
        else:
            task["predictions"] = [{"model_version": "fishbear", "result": results,
                                    "score": round(float(max(scores, default=0.0)), 4)}]
        self._tasks.append(task)
        self.count += 1
        return {}

    def close(self) -> str:
        if not self._tasks:
            return ""
        from xml.sax.saxutils import quoteattr

        self.files.write_text(self.root / "tasks.json", json.dumps(self._tasks, indent=1))
        labels = "\n".join(f"    <Label value={quoteattr(c)}/>" for c in self.classes)
        config = (f'<View>\n  <Image name="image" value="$image"/>\n  <RectangleLabels name="label" toName="image">\n'
                  f"{labels}\n  </RectangleLabels>\n</View>\n")
        self.files.write_text(self.root / "label_config.xml", config)
        return f"Label Studio tasks for {self.count} images in {self.root / 'tasks.json'} (interface: label_config.xml)"


FORMAT = LabelFormat(
    name="labelstudio", kind="detect", reader=LabelStudioReader, writer=LabelStudioWriter,
    summary="Label Studio JSON tasks: rectanglelabels in percent of the image, predictions with scores",
    layout="tasks.json (+ images/ when converting)")
