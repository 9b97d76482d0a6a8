"""BIWI Kinect head pose: ``<NN>/frame_<k>_rgb.jpg`` with ``frame_<k>_pose.txt`` beside it and one
``<NN>/rgb.cal`` per person; the head centre is projected into the image (fastai lesson 3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample
from fishbear.data.label_files import read_label_text
from fishbear.formats.base import LabelFormat
from fishbear.formats.points_csv import check_points_inside


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
    def read(cls, path: Path) -> BiwiCalibration:
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


FORMAT = LabelFormat(name="biwi", kind="points", reader=BiwiReader,
                     summary="BIWI Kinect head pose: the head centre projected with each person's rgb.cal",
                     layout="<NN>/frame_<k>_rgb.jpg + _pose.txt + rgb.cal")
