from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from fishbear.data.shapes import MARKER, SHAPE_KINDS, Shape, ShapesSource, render_scene
from fishbear.kinds import get_kind

CLASSIFY = get_kind("classify")


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.jpg")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_writes_an_image_folder_tree_with_the_asked_counts(tmp_path):
    root = ShapesSource(train=3, valid=2, test=1, image_size=32).prepare(tmp_path / "shapes", CLASSIFY)
    for split, per_class in (("train", 3), ("valid", 2), ("test", 1)):
        for kind in SHAPE_KINDS:
            files = list((root / split / kind).glob("*.jpg"))
            assert len(files) == per_class, (split, kind)
    assert (root / MARKER).is_file()
    # the lock that serialises runs preparing the data side by side stays (removing it would race)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")], \
        "staging folder left behind"


def test_generation_is_deterministic_and_idempotent(tmp_path):
    a = ShapesSource(train=2, valid=1, test=1, image_size=32).prepare(tmp_path / "a", CLASSIFY)
    b = ShapesSource(train=2, valid=1, test=1, image_size=32).prepare(tmp_path / "b", CLASSIFY)
    assert _digest(a) == _digest(b)
    before = {p: p.stat().st_mtime_ns for p in a.rglob("*.jpg")}
    ShapesSource(train=2, valid=1, test=1, image_size=32).prepare(a, CLASSIFY)
    assert before == {p: p.stat().st_mtime_ns for p in a.rglob("*.jpg")}, "second prepare rewrote files"
    c = ShapesSource(train=2, valid=1, test=1, image_size=32, seed=1).prepare(tmp_path / "c", CLASSIFY)
    assert _digest(a) != _digest(c)


def test_changed_parameters_regenerate(tmp_path):
    root = tmp_path / "shapes"
    ShapesSource(train=2, valid=1, test=1, image_size=32).prepare(root, CLASSIFY)
    ShapesSource(train=3, valid=1, test=1, image_size=32).prepare(root, CLASSIFY)
    assert len(list((root / "train" / "circle").glob("*.jpg"))) == 3


def test_scene_keeps_geometry_for_other_task_kinds():
    rng = np.random.default_rng(0)
    scene = render_scene(rng, 64, ["star", "square"])
    assert scene.image.shape == (64, 64, 3) and scene.image.dtype == np.uint8
    assert [s.kind for s in scene.shapes] == ["star", "square"]
    for shape, mask in zip(scene.shapes, scene.masks):
        xmin, ymin, xmax, ymax = shape.bbox(64)
        assert 0 <= xmin < xmax <= 64 and 0 <= ymin < ymax <= 64
        ys, xs = np.nonzero(mask)
        assert mask.sum() > 20
        assert xs.min() >= xmin - 1 and xs.max() <= xmax + 1 and ys.min() >= ymin - 1 and ys.max() <= ymax + 1


def test_star_has_ten_vertices_and_circle_is_round():
    star = Shape("star", 10, 10, 5, 0.0, (0, 0, 0)).polygon()
    assert len(star) == 10
    circle = np.array(Shape("circle", 0, 0, 3, 0.0, (0, 0, 0)).polygon())
    assert np.allclose(np.hypot(circle[:, 0], circle[:, 1]), 3)
