"""The embedded default dataset: coloured shapes on noisy, textured backgrounds.

It is written to disk in the same formats users bring (an ImageFolder tree for classification),
so that the default run exercises the real readers rather than an in-memory shortcut. A scene is
kept as data (each shape's kind, centre, size, rotation and polygon), so that other task kinds
(tags, masks, points, boxes) are further writers over the same scenes, not a second generator.
Generation is seeded per split and image, idempotent (a marker file records the parameters) and
atomic (written to a temporary folder, then renamed).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw

from fishbear.core.atomic import exclusive, umask_mode

SHAPE_KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star")
SPLITS: tuple[str, ...] = ("train", "valid", "test")
MARKER = ".fishbear-shapes.json"
_SUPERSAMPLE = 4


class WritesShapes(Protocol):
    """A task kind (``fishbear.kinds``), as the generator sees it: it writes the scenes in its format."""

    name: str

    def write_shapes(self, source: ShapesSource, root: Path) -> None: ...


@dataclass(frozen=True)
class Shape:
    """One drawn shape, in pixel coordinates of its image."""

    kind: str
    cx: float
    cy: float
    radius: float
    angle: float
    colour: tuple[int, int, int]

    def polygon(self) -> list[tuple[float, float]]:
        """Outline as points; a circle is a fine polygon so that every kind rasterises alike."""
        if self.kind == "circle":
            angles = np.linspace(0, 2 * math.pi, 64, endpoint=False)
            radii = np.full_like(angles, self.radius)
        elif self.kind == "square":
            angles = np.arange(4) * math.pi / 2 + math.pi / 4
            radii = np.full(4, self.radius)
        elif self.kind == "triangle":
            angles = np.arange(3) * 2 * math.pi / 3 - math.pi / 2
            radii = np.full(3, self.radius)
        elif self.kind == "star":
            angles = np.arange(10) * math.pi / 5 - math.pi / 2
            radii = np.where(np.arange(10) % 2 == 0, self.radius, self.radius * 0.45)
        else:
            raise ValueError(f"unknown shape kind {self.kind!r}; known: {SHAPE_KINDS}")
        angles = angles + self.angle
        return [
            (self.cx + r * math.cos(a), self.cy + r * math.sin(a)) for a, r in zip(angles, radii)
        ]

    def bbox(self, size: int) -> tuple[float, float, float, float]:
        """Tight box ``xmin, ymin, xmax, ymax`` clipped to the image."""
        xs, ys = zip(*self.polygon())
        clip = lambda v: float(min(max(v, 0.0), size))  # noqa: E731
        return clip(min(xs)), clip(min(ys)), clip(max(xs)), clip(max(ys))


@dataclass
class Scene:
    image: np.ndarray  # H x W x 3 uint8
    shapes: list[Shape]
    masks: list[np.ndarray]  # one H x W bool mask per shape, in drawing order


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted base colour with low-frequency blobs, a gradient, faint stripes and pixel noise:
    texture a model must learn to ignore, but not so loud that a shape's outline is lost in it."""
    base_colour = rng.uniform(50, 205, size=3)
    coarse = rng.normal(0, 35, size=(rng.integers(2, 6), rng.integers(2, 6), 3))
    coarse_img = Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8))
    blobs = np.asarray(coarse_img.resize((size, size), Image.BICUBIC), dtype=np.float32) - 128
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    theta = rng.uniform(0, 2 * math.pi)
    gradient = (np.cos(theta) * xx + np.sin(theta) * yy - 0.5)[..., None] * rng.uniform(-40, 40, size=3)
    freq = rng.uniform(4, 12)
    stripes = np.sin(2 * math.pi * freq * (np.cos(-theta) * xx + np.sin(-theta) * yy))[..., None]
    stripes = stripes * rng.uniform(0, 12)
    noise = rng.normal(0, rng.uniform(4, 14), size=(size, size, 3))
    return np.clip(base_colour + blobs + gradient + stripes + noise, 0, 255)


def _contrasting_colour(rng: np.random.Generator, around: np.ndarray) -> tuple[int, int, int]:
    """A saturated colour far enough from the local background to be seen."""
    for _ in range(32):
        colour = rng.uniform(0, 255, size=3)
        colour[rng.integers(0, 3)] = rng.choice([rng.uniform(0, 40), rng.uniform(215, 255)])
        if np.abs(colour - around).sum() > 220:
            break
    return tuple(int(c) for c in colour)


def render_scene(
    rng: np.random.Generator,
    size: int,
    kinds: list[str],
    min_radius: float = 0.2,
    max_radius: float = 0.4,
    max_rotation: float = 180.0,
) -> Scene:
    """Draw one shape per entry of ``kinds`` on a textured background.

    Radii are fractions of ``size``; each shape is turned by a random angle within
    ``±max_rotation`` degrees of upright.
    """
    canvas = _background(rng, size)
    shapes, masks = [], []
    for kind in kinds:
        radius = rng.uniform(min_radius, max_radius) * size
        margin = radius * 0.8
        cx, cy = rng.uniform(margin, size - margin, size=2)
        inside = canvas[int(cy), int(cx)]
        angle = math.radians(rng.uniform(-max_rotation, max_rotation))
        shape = Shape(kind, float(cx), float(cy), float(radius), float(angle),
                      _contrasting_colour(rng, inside))
        hi = Image.new("L", (size * _SUPERSAMPLE, size * _SUPERSAMPLE), 0)
        ImageDraw.Draw(hi).polygon([(x * _SUPERSAMPLE, y * _SUPERSAMPLE) for x, y in shape.polygon()],
                                   fill=255)
        alpha = np.asarray(hi.resize((size, size), Image.BOX), dtype=np.float32)[..., None] / 255.0
        shade = np.asarray(shape.colour, dtype=np.float32) + rng.normal(0, 10, size=(size, size, 3))
        canvas = canvas * (1 - alpha) + shade * alpha
        shapes.append(shape)
        masks.append(alpha[..., 0] >= 0.5)
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    return Scene(image=image, shapes=shapes, masks=masks)


@dataclass(frozen=True)
class ShapesSource:
    """Fills a data root with a generated shapes dataset when it is not there yet.

    ``train``/``valid``/``test`` are images per class and split (four classes). The task kind the
    data module asks for picks the on-disk format (``Kind.write_shapes``), each one a real
    format's layout: an ImageFolder tree for classification, Planet's CSV of tags, fastai's CamVid
    masks, a CSV of the star's centre, Pascal VOC XML boxes, a CSV of counts. The flat layouts hold
    all images in one folder; their data configs hold out validation and test by fraction.
    """

    image_size: int = 64
    train: int = 300
    valid: int = 60
    test: int = 100
    seed: int = 0
    jpeg_quality: int = 92
    distractors: int = 2  # points: at most this many other shapes beside the star
    max_shapes: int = 4   # regress (counts): 0 to this many shapes per image

    def prepare(self, root: str | Path, kind: WritesShapes) -> Path:
        """Write the dataset for ``kind`` into ``root`` unless it is there with these parameters."""
        root = Path(root)
        params = {"version": 2, "kind": kind.name, **asdict(self)}
        marker = root / MARKER
        if marker.is_file() and json.loads(marker.read_text()) == params:
            return root
        root.parent.mkdir(parents=True, exist_ok=True)
        with exclusive(root.parent / f".{root.name}.lock"):  # parallel runs: one writes, the others wait
            if marker.is_file() and json.loads(marker.read_text()) == params:
                return root  # written while this process waited
            staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
            staging.chmod(umask_mode(0o777))  # mkdtemp makes it 0700; the dataset is for every user
            try:
                kind.write_shapes(self, staging)
                (staging / MARKER).write_text(json.dumps(params, indent=2))
                if root.exists():
                    shutil.rmtree(root)
                staging.rename(root)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return root

    def rng(self, split: str, index: int) -> np.random.Generator:
        """One generator per image, so any image can be re-made alone and splits never overlap."""
        return np.random.default_rng([self.seed, SPLITS.index(split), index])

    def count(self, split: str) -> int:
        return int(getattr(self, split))

    def total_flat(self) -> int:
        """Images of the flat layouts: every split's count of every shape, in one folder."""
        return sum(self.count(split) for split in SPLITS) * len(SHAPE_KINDS)


def flat_scenes(source: ShapesSource, rng_split: str = "train"):
    """Every image of the flat layouts (one folder, labels in a file; the data module holds out
    validation and test by fraction): ``(name, scene)`` with one to three shapes each."""
    for index in range(source.total_flat()):
        rng = source.rng(rng_split, index)
        kinds = list(rng.choice(SHAPE_KINDS, size=int(rng.integers(1, 4)), replace=False))
        yield f"shapes_{index:05d}", render_scene(rng, source.image_size, kinds, 0.15, 0.3)
