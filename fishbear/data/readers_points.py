"""Point datasets: a generic CSV (``image,x1,y1[,x2,y2...]``) and BIWI Kinect head pose.

Points are stored in pixels of the original image; the codec turns them into [-1, 1] after
augmentation. A point outside its image is refused here, naming the file: it is nearly always a
calibration or unit mistake, and training on it would teach the model to point off the frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fishbear.data.catalog import Catalog, Sample
from fishbear.data.label_files import read_label_text, image_lookup, read_csv_rows, resolve_images
from fishbear.errors import DataError


def check_points_inside(image: Path, points: np.ndarray, source: str) -> None:
    from fishbear.data.boxes import image_size

    width, height = image_size(image)
    outside = [(float(x), float(y)) for x, y in points if not (0 <= x < width and 0 <= y < height)]
    if outside:
        x, y = outside[0]
        raise DataError(f"{source}: point ({x:.1f}, {y:.1f}) lies outside image {image} ({width}x{height}). "
                        "Fix the label (pixel coordinates, origin top-left) or remove the image.")


@dataclass(frozen=True)
class PointsCsvReader:
    """A CSV with an image column and ``x1,y1,x2,y2...`` columns in pixels; ``names`` names the
    points (default ``point1..K``)."""

    csv: str = "points.csv"
    folder: str = "images"
    extension: str = ".jpg"
    image_column: str = "image"
    names: list[str] | None = None
    allow_outside: bool = False   # image names in the CSV may be links out of the dataset

    def __call__(self, root: Path) -> Catalog:
        root = Path(root)
        label_file, folder = root / self.csv, root / self.folder
        rows: list[tuple[int, str, np.ndarray]] = []
        for line, row in read_csv_rows(label_file, (self.image_column, "x1", "y1")):
            count = sum(1 for key in row if key and re.fullmatch(r"x\d+", key))
            try:
                values = [float(row[f"{axis}{i}"]) for i in range(1, count + 1) for axis in "xy"]
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{label_file}, line {line}: every x<i>,y<i> column must hold a number "
                                f"(got {[row.get(k) for k in row if k != self.image_column]}).") from None
            if not all(np.isfinite(values)):
                raise DataError(f"{label_file}, line {line}: point coordinates must be finite numbers (got {values}).")
            rows.append((line, row[self.image_column].strip(), np.array(values, dtype=np.float32).reshape(-1, 2)))
        if not rows:
            raise DataError(f"{label_file} has a header but no rows.")
        files = resolve_images([(line, name) for line, name, _ in rows], image_lookup(folder, self.extension),
                               label_file, folder, self.extension, root, self.allow_outside)
        for path, (line, _, points) in zip(files, rows):
            check_points_inside(path, points, f"{label_file}, line {line}")
        k = len(rows[0][2])
        names = list(self.names or [f"point{i}" for i in range(1, k + 1)])
        if len(names) != k:
            raise DataError(f"data.reader.names has {len(names)} names but {label_file} has {k} point(s) a row.")
        return Catalog(splits={"train": [Sample(p, r[2]) for p, r in zip(files, rows)]}, classes=names, kind="points")


def _numbers(path: Path, what: str) -> list[list[float]]:
    """Non-blank lines of whitespace-separated numbers; a line that does not parse is named."""
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist.")
    out = []
    for number, line in enumerate(read_label_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append([float(v) for v in line.split()])
        except ValueError:
            raise DataError(f"{path}, line {number}: {line.strip()!r} is not a row of numbers; "
                            f"a BIWI {what} file holds only numbers.") from None
    return out


@dataclass(frozen=True)
class BiwiCalibration:
    """``rgb.cal``: the RGB camera's 3x3 intrinsics first (then distortion, extrinsics, size,
    which the fastai lesson's projection does not use)."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def read(cls, path: Path) -> "BiwiCalibration":
        rows = _numbers(path, "calibration")
        if len(rows) < 3 or any(len(r) != 3 for r in rows[:3]):
            raise DataError(f"{path}: the first three lines must be the 3x3 camera matrix "
                            "(e.g. '517.679 0 320' / '0 517.679 240.5' / '0 0 1').")
        (fx, _, cx), (_, fy, cy), _ = rows[:3]
        if fx <= 0 or fy <= 0:
            raise DataError(f"{path}: focal lengths {fx}, {fy} must be positive (line 1 column 1, line 2 column 2).")
        return cls(fx, fy, cx, cy)

    def project(self, x: float, y: float, z: float) -> tuple[float, float]:
        """A point in camera coordinates (mm) to image pixels (pinhole model)."""
        return x * self.fx / z + self.cx, y * self.fy / z + self.cy


def read_head_centre(path: Path) -> tuple[float, float, float]:
    """``frame_NNNNN_pose.txt``: a 3x3 rotation, then the head centre ``x y z`` in mm."""
    rows = _numbers(path, "pose")
    if len(rows) != 4 or any(len(r) != 3 for r in rows):
        raise DataError(f"{path}: a pose file holds 4 rows of 3 numbers (3x3 rotation, then the head centre "
                        f"x y z in mm); found {len(rows)} row(s) of {[len(r) for r in rows]} numbers.")
    x, y, z = rows[3]
    if z <= 0:
        raise DataError(f"{path}, head centre line: depth z={z} must be positive (mm in front of the camera).")
    return x, y, z


@dataclass(frozen=True)
class BiwiReader:
    """BIWI Kinect head pose: ``<NN>/frame_<k>_rgb.jpg`` with ``frame_<k>_pose.txt`` beside it and
    one ``<NN>/rgb.cal`` per person. The target is the head centre projected into the image, as in
    fastai's lesson 3; folders in ``valid_folders`` / ``test_folders`` make those splits, so a
    person is never in two splits."""

    folder: str = "."
    valid_folders: list[str] = field(default_factory=lambda: ["13"])
    test_folders: list[str] = field(default_factory=list)
    check_points: bool = True

    def __call__(self, root: Path) -> Catalog:
        root = Path(root) / self.folder
        people = sorted(p for p in root.iterdir() if p.is_dir() and (p / "rgb.cal").is_file()) if root.is_dir() else []
        if not people:
            raise DataError(f"{root} holds no BIWI person folders (<NN>/rgb.cal with frame_<k>_rgb.jpg files). "
                            "Point data.root at the unpacked hpdb folder.")
        splits: dict[str, list[Sample]] = {"train": [], "valid": [], "test": []}
        for person in people:
            calibration = BiwiCalibration.read(person / "rgb.cal")
            split = ("valid" if person.name in self.valid_folders
                     else "test" if person.name in self.test_folders else "train")
            for image in sorted(person.glob("frame_*_rgb.*")):
                pose = image.with_name(image.name.rsplit("_rgb", 1)[0] + "_pose.txt")
                if not pose.is_file():
                    raise DataError(f"No pose file for {image}: expected {pose}.")
                point = np.array([calibration.project(*read_head_centre(pose))], dtype=np.float32)
                if self.check_points:
                    check_points_inside(image, point, f"{pose} (projected with {person / 'rgb.cal'})")
                splits[split].append(Sample(image, point))
        return Catalog(splits={k: v for k, v in splits.items() if v or k == "train"}, classes=["head"], kind="points")
