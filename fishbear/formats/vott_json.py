"""VoTT JSON: the 2.x JSON export (``assets`` with ``boundingBox`` and ``tags``), and 1.x
video-tagging JSON (``frames`` keyed by frame number, whose coordinates are in the pixels of the
player as it was then shown: each region's ``width``/``height``, which change from frame to frame,
so they are normalised per region and scaled to the real frame)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fishbear.core.errors import DataError
from fishbear.data.boxes import Boxes, image_size, recorded_size
from fishbear.data.label_files import find_image, read_label_json, structure_of
from fishbear.formats.base import LabelFileBoxReader, LabelFormat


@dataclass(frozen=True)
class VottJsonReader(LabelFileBoxReader):
    """2.x export JSON, or 1.x video JSON (``frames``), told apart by their keys. For video JSON,
    ``frame_name`` names the image of frame N (``{stem}`` is the video file's stem) and only
    frames with an image are read; visited frames without regions are negatives."""

    file: str = "vott-json-export.json"
    frame_name: str = "{stem}_frame_{frame}.jpg"

    def read(self, root: Path) -> tuple[list[Any], str]:
        path = root / self.file
        data = read_label_json(path, "data.reader.file", "VoTT")
        with structure_of(path, "VoTT JSON export"):
            if isinstance(data, dict) and "frames" in data:
                entries = self._video(data, path, root / self.images)
            elif isinstance(data, dict) and "assets" in data:
                entries = self._assets(data, path, root)
            else:
                raise DataError(f"{path}: neither a VoTT 2 export ('assets') nor a VoTT 1 video project ('frames').")
        if not entries:
            raise DataError(f"{path}: none of its images is in {root / self.images}.")
        return entries, str(path)

    def _assets(self, data: dict, path: Path, root: Path) -> list:
        entries = []
        for key, item in data["assets"].items():
            name = (item.get("asset") or {}).get("name")
            if not name:
                raise DataError(f"{path}: asset {key!r} has no asset.name.")
            rows = []
            for i, region in enumerate(item.get("regions") or []):
                box, tags = region.get("boundingBox"), region.get("tags") or []
                if not box or not tags:
                    raise DataError(f"{path}: asset {name}, region {i} needs a boundingBox and at least one tag.")
                left, top = float(box["left"]), float(box["top"])
                rows.append((left, top, left + float(box["width"]), top + float(box["height"]), tags[0], False))
            size = (item.get("asset") or {}).get("size")
            size = size if isinstance(size, dict) else {}
            entries.append((self.image(root, name, path, f"asset {key!r}"), Boxes.of(rows),
                            recorded_size(size.get("width"), size.get("height"))))
        return entries

    def _video(self, data: dict, path: Path, folder: Path) -> list:
        stem = path.name.split(".")[0]
        visited = {str(v) for v in data.get("visitedFrames", [])}
        entries = []
        for frame in sorted(set(data["frames"]) | visited, key=int):
            image = find_image(folder, self.frame_name.format(stem=stem, frame=frame))
            if image is None:
                continue
            width, height = image_size(image)
            rows = []
            for i, region in enumerate(data["frames"].get(frame) or []):
                try:
                    sx, sy = width / float(region["width"]), height / float(region["height"])
                    coords = (float(region["x1"]) * sx, float(region["y1"]) * sy,
                              float(region["x2"]) * sx, float(region["y2"]) * sy)
                except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
                    raise DataError(f"{path}: frame {frame}, region {i}: needs x1, y1, x2, y2 and the display "
                                    f"width/height ({err!r}).") from None
                tags = region.get("tags") or []
                if not tags:
                    raise DataError(f"{path}: frame {frame}, region {i} has no tag.")
                rows.append((*coords, tags[0], False))
            entries.append((image, Boxes.of(rows)))
        return entries


FORMAT = LabelFormat(name="vott_json", kind="detect", reader=VottJsonReader,
                     summary="VoTT JSON: a 2.x export (assets) or a 1.x video project (frames)",
                     layout="vott-json-export.json + frames")
