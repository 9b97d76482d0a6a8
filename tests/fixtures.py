"""Small datasets written in exactly the real formats: Planet (tiles + train_v2.csv), fastai's
CamVid (images/ + labels/<stem>_P.png + codes.txt) and BIWI head pose (per-person folders with
frame_<k>_rgb.jpg, frame_<k>_pose.txt and rgb.cal)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 230)}

# the first lines of a real BIWI rgb.cal (intrinsics, distortion, extrinsics, size), as the
# fastai lesson prints them
BIWI_CAL = """517.679 0 320 
0 517.679 240.5 
0 0 1 

0 0 0 0 

0.999947 0.00432361 0.00929419 
-0.00446314 0.999877 0.0150443 
-0.00922785 -0.0150851 0.999843 

-24.0198 5.8896 -13.2308 

640 480
"""


def write_planet(root: Path, n: int = 160, size: int = 32, seed: int = 0) -> Path:
    """Tiles with blobs of some of three colours on grey noise; the tags name the colours present
    (each with probability 1/2, at least one). An easy multi-label problem in Planet's layout."""
    rng = np.random.default_rng(seed)
    (root / "train-jpg").mkdir(parents=True, exist_ok=True)
    rows = ["image_name,tags"]
    for i in range(n):
        tags = [c for c in COLOURS if rng.random() < 0.5] or [str(rng.choice(list(COLOURS)))]
        image = rng.normal(128, 20, size=(size, size, 3))
        for tag in tags:
            x, y = rng.integers(3, size - 9, size=2)
            image[y : y + 7, x : x + 7] = COLOURS[tag]
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / "train-jpg" / f"train_{i}.jpg", quality=95)
        rows.append(f"train_{i},{' '.join(tags)}")
    (root / "train_v2.csv").write_text("\n".join(rows) + "\n")
    return root


def write_camvid(root: Path, n: int = 6, size: tuple[int, int] = (24, 32)) -> Path:
    """fastai's CamVid layout with a 3-code vocabulary (Sky, Road, Void) and valid.txt."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    (root / "codes.txt").write_text("Sky\nRoad\nVoid\n")
    height, width = size
    for i in range(n):
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[height // 2 :] = 1
        mask[height // 2, :] = 2
        image = np.where(mask[..., None] == 0, 200, 60).astype(np.uint8).repeat(3, axis=2)
        Image.fromarray(image).save(root / "images" / f"0001TP_{i:06d}.png")
        labels = Image.fromarray(mask, mode="P")
        labels.putpalette([128, 128, 128, 128, 64, 128, 0, 0, 0])
        labels.save(root / "labels" / f"0001TP_{i:06d}_P.png")
    (root / "valid.txt").write_text(f"0001TP_{n - 1:06d}.png\n")
    return root


def write_biwi(root: Path, people: dict[str, int], seed: int = 0) -> list[tuple[Path, tuple[float, float]]]:
    """BIWI folders: per person ``rgb.cal`` and frames with a pose each (3x3 rotation, blank line,
    head centre in mm). Returns each image with the head centre projected as fastai's lesson does."""
    rng = np.random.default_rng(seed)
    out = []
    for person, frames in people.items():
        folder = root / person
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rgb.cal").write_text(BIWI_CAL)
        for k in range(3, 3 + frames):
            x, y, z = rng.uniform(-150, 150), rng.uniform(-100, 100), rng.uniform(800, 1200)
            (folder / f"frame_{k:05d}_pose.txt").write_text(
                "0.976285 0.0139173 -0.215958 \n-0.0287698 0.997103 -0.0658211 \n0.214483 0.0705706 0.97418 \n\n"
                f"{x:.4f} {y:.4f} {z:.4f} \n")
            image = folder / f"frame_{k:05d}_rgb.jpg"
            Image.fromarray(rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)).resize((640, 480)).save(image)
            out.append((image, (x * 517.679 / z + 320, y * 517.679 / z + 240.5)))
    return out


def decompression_bomb(path: Path, side: int = 20000) -> Path:
    """A PNG whose header says ``side`` x ``side`` (400 M pixels): a few hundred bytes on disk that
    PIL refuses to decode (twice its MAX_IMAGE_PIXELS)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path
