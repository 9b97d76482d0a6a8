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

import numpy as np
from PIL import Image, ImageDraw

SHAPE_KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star")
SPLITS: tuple[str, ...] = ("train", "valid", "test")
MARKER = ".fishbear-shapes.json"
_SUPERSAMPLE = 4


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

    ``train``/``valid``/``test`` are images per class and split (four classes). ``kind`` picks the
    on-disk format, each one a real format's layout: ``classify`` an ImageFolder tree
    ``<split>/<shape>/<n>.jpg``; ``multilabel`` Planet's CSV of tags, ``segment`` fastai's CamVid
    masks and ``codes.txt``, ``points`` a CSV of the star's centre, ``detect`` Pascal VOC XML
    boxes. The flat layouts hold all
    images in one folder; their data configs hold out validation and test by fraction.
    """

    kind: str = "classify"
    image_size: int = 64
    train: int = 300
    valid: int = 60
    test: int = 100
    seed: int = 0
    jpeg_quality: int = 92
    distractors: int = 2  # points: at most this many other shapes beside the star

    def prepare(self, root: str | Path) -> Path:
        root = Path(root)
        params = {"version": 2, **asdict(self)}
        marker = root / MARKER
        if marker.is_file() and json.loads(marker.read_text()) == params:
            return root
        writer = _WRITERS.get(self.kind)
        if writer is None:
            raise ValueError(f"shapes cannot be written for kind {self.kind!r}; known: {sorted(_WRITERS)}")
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            writer(self, staging)
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


def _write_image_folder(source: ShapesSource, root: Path) -> None:
    for split in SPLITS:
        for kind in SHAPE_KINDS:
            (root / split / kind).mkdir(parents=True, exist_ok=True)
        for index in range(source.count(split) * len(SHAPE_KINDS)):
            kind = SHAPE_KINDS[index % len(SHAPE_KINDS)]
            scene = render_scene(source.rng(split, index), source.image_size, [kind])
            Image.fromarray(scene.image).save(
                root / split / kind / f"{index:05d}.jpg", quality=source.jpeg_quality
            )


def _flat_scenes(source: ShapesSource, rng_split: str = "train"):
    """Every image of the flat layouts (one folder, labels in a file; the data module holds out
    validation and test by fraction): ``(name, scene)`` with one to three shapes each."""
    total = sum(source.count(split) for split in SPLITS) * len(SHAPE_KINDS)
    for index in range(total):
        rng = source.rng(rng_split, index)
        kinds = list(rng.choice(SHAPE_KINDS, size=int(rng.integers(1, 4)), replace=False))
        yield f"shapes_{index:05d}", render_scene(rng, source.image_size, kinds, 0.15, 0.3)


def _write_tags(source: ShapesSource, root: Path) -> None:
    """Planet's layout: ``train-jpg/<name>.jpg`` and ``train_v2.csv`` (``image_name,tags``, the tags
    of the shapes present separated by spaces)."""
    (root / "train-jpg").mkdir(parents=True)
    rows = ["image_name,tags"]
    for name, scene in _flat_scenes(source):
        Image.fromarray(scene.image).save(root / "train-jpg" / f"{name}.jpg", quality=source.jpeg_quality)
        rows.append(f"{name},{' '.join(sorted({shape.kind for shape in scene.shapes}))}")
    (root / "train_v2.csv").write_text("\n".join(rows) + "\n")


MASK_CODES: tuple[str, ...] = ("background", *SHAPE_KINDS, "void")


def _write_masks(source: ShapesSource, root: Path) -> None:
    """fastai's CamVid layout: ``images/<name>.png``, palette masks ``labels/<name>_P.png`` (pixel
    value = line of ``codes.txt``), ``valid.txt``. Each shape's anti-aliased rim is ``void``, as
    CamVid leaves object borders unlabelled."""
    from fishbear.plots import palette

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    code = {name: i for i, name in enumerate(MASK_CODES)}
    colours = palette(len(MASK_CODES), code["void"]).ravel().tolist()
    names = []
    for name, scene in _flat_scenes(source):
        mask = np.zeros(scene.image.shape[:2], dtype=np.uint8)
        for shape, inside in zip(scene.shapes, scene.masks):
            mask[inside] = code[shape.kind]
            rim = inside ^ _eroded(inside)
            mask[rim] = code["void"]
        Image.fromarray(scene.image).save(root / "images" / f"{name}.png")
        labels = Image.fromarray(mask, mode="P")
        labels.putpalette(colours)
        labels.save(root / "labels" / f"{name}_P.png")
        names.append(name)
    (root / "codes.txt").write_text("\n".join(MASK_CODES) + "\n")
    n_valid = source.valid * len(SHAPE_KINDS)
    (root / "valid.txt").write_text("".join(f"{name}.png\n" for name in names[-n_valid:]))


def _eroded(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return inner


def _write_points(source: ShapesSource, root: Path) -> None:
    """A star and up to two other shapes per image; ``points.csv`` gives the star's centre in
    pixels (``image,x1,y1``): the model must find the star, not just any shape."""
    (root / "images").mkdir(parents=True)
    rows = ["image,x1,y1"]
    total = sum(source.count(split) for split in SPLITS) * len(SHAPE_KINDS)
    others = [k for k in SHAPE_KINDS if k != "star"]
    for index in range(total):
        rng = source.rng("train", index)
        kinds = ["star", *rng.choice(others, size=int(rng.integers(0, source.distractors + 1)), replace=False)]
        rng.shuffle(kinds)
        scene = render_scene(rng, source.image_size, kinds, 0.12, 0.22)
        star = next(shape for shape in scene.shapes if shape.kind == "star")
        name = f"shapes_{index:05d}.jpg"
        Image.fromarray(scene.image).save(root / "images" / name, quality=source.jpeg_quality)
        rows.append(f"{name},{star.cx:.2f},{star.cy:.2f}")
    (root / "points.csv").write_text("\n".join(rows) + "\n")


def _write_boxes(source: ShapesSource, root: Path) -> None:
    """Pascal VOC's layout: ``JPEGImages/<name>.jpg`` and ``Annotations/<name>.xml`` with a box per
    shape, named by its kind. About one image in eight has no shape (a negative, as the empty
    frames of the fish video); shapes may overlap, as fish do."""
    from fishbear.data.readers_voc import voc_xml

    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    total = sum(source.count(split) for split in SPLITS) * len(SHAPE_KINDS)
    for index in range(total):
        rng = source.rng("train", index)
        count = 0 if rng.random() < 0.125 else int(rng.integers(1, 4))
        kinds = list(rng.choice(SHAPE_KINDS, size=count, replace=False))
        scene = render_scene(rng, source.image_size, kinds, 0.12, 0.25)
        name = f"shapes_{index:05d}"
        Image.fromarray(scene.image).save(root / "JPEGImages" / f"{name}.jpg", quality=source.jpeg_quality)
        objects = [(shape.kind, shape.bbox(source.image_size)) for shape in scene.shapes]
        xml = voc_xml(f"{name}.jpg", source.image_size, source.image_size, objects)
        (root / "Annotations" / f"{name}.xml").write_text(xml)


_WRITERS = {"classify": _write_image_folder, "multilabel": _write_tags, "segment": _write_masks,
            "points": _write_points, "detect": _write_boxes}
