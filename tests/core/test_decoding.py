"""A checkpoint is data, not code: opening one, rebuilding its network, sorting frames by its
class names and resuming a run folder run nothing the files name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps


def _with_orientation(picture: Image.Image, orientation: int, path: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    picture.save(path, exif=exif, quality=98) if path.suffix == ".jpg" else picture.save(path, exif=exif)
    return path


def _pictures(folder: Path) -> list[Path]:
    """One file per mode a user meets: EXIF-turned JPEG, 16-bit grey PNG, float and 32-bit TIFFs,
    palette with transparency, grey with alpha, CMYK JPEG, 1-bit, RGBA."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8))
    files = [_with_orientation(rgb, o, folder / f"turned{o}.png") for o in range(1, 9)]
    files.append(_with_orientation(rgb, 6, folder / "turned6.jpg"))
    grey16 = (np.arange(24 * 40, dtype=np.uint16).reshape(24, 40) * 68)
    Image.fromarray(grey16).save(folder / "grey16.png")
    Image.fromarray(np.linspace(0, 1, 24 * 40, dtype=np.float32).reshape(24, 40)).save(folder / "float01.tif")
    wide = np.linspace(-5, 3000, 24 * 40, dtype=np.float32).reshape(24, 40)
    wide[0, 0] = np.nan
    Image.fromarray(wide).save(folder / "float_wide.tif")
    Image.fromarray(np.arange(24 * 40, dtype=np.int32).reshape(24, 40) * 70).save(folder / "int32.tif")
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    palette.save(folder / "palette.png")
    rgb.convert("LA").save(folder / "grey_alpha.png")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    rgb.convert("1").save(folder / "bits.png")
    rgb.convert("RGBA").save(folder / "rgba.png")
    return files + [folder / n for n in ("grey16.png", "float01.tif", "float_wide.tif", "int32.tif", "palette.png",
                                          "grey_alpha.png", "cmyk.jpg", "bits.png", "rgba.png")]


def test_images_are_read_upright_and_at_full_range(tmp_path):
    from PIL import Image

    from fishbear.data.images import load_rgb

    gradient = (np.arange(64, dtype=np.uint16)[None, :] * 1040).repeat(8, axis=0)  # 0 .. 65520
    Image.fromarray(gradient).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    read = load_rgb(tmp_path / "deep.png")[..., 0]
    assert read.shape == (8, 64) and (read == 255).mean() < 0.05 and read[0, 32] == pytest.approx(130, abs=2)

    portrait = Image.new("RGB", (40, 20), (200, 30, 30))  # stored on its side, as phone cameras do
    exif = portrait.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view
    portrait.save(tmp_path / "phone.jpg", exif=exif)
    assert load_rgb(tmp_path / "phone.jpg").shape == (40, 20, 3)


def test_fishbear_and_the_standalone_predictor_decode_every_mode_alike(tmp_path):
    from fishbear.data.images import load_rgb
    from fishbear.engine.deploy import standalone

    for path in _pictures(tmp_path):
        ours, theirs = load_rgb(path), standalone.load_rgb(path)
        assert ours.dtype == theirs.dtype == np.uint8 and ours.shape[2] == 3, path.name
        assert np.array_equal(ours, theirs), path.name


def test_greys_of_every_depth_use_their_full_range_and_turned_photos_stand_upright(tmp_path):
    from fishbear.data.images import load_rgb, upright_size

    files = {p.name: p for p in _pictures(tmp_path)}
    for name in ("grey16.png", "float01.tif", "float_wide.tif", "int32.tif"):
        pixels = load_rgb(files[name])[..., 0]
        assert pixels.max() >= 250 and pixels.min() <= 5, name   # neither clipped white nor crushed black
    assert load_rgb(files["float_wide.tif"])[0, 0, 0] == 0       # NaN is black
    reference = np.asarray(Image.open(files["turned1.png"]).convert("RGB"))
    for o in range(1, 9):
        with Image.open(files[f"turned{o}.png"]) as opened:
            expected = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
        assert np.array_equal(load_rgb(files[f"turned{o}.png"]), expected)
        assert upright_size(files[f"turned{o}.png"]) == (expected.shape[1], expected.shape[0])
    assert load_rgb(files["turned6.png"]).shape == (40, 24, 3) and reference.shape == (24, 40, 3)
