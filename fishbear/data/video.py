"""Reading video files frame by frame (PyAV), and the optional clean-up of murky underwater frames.

Shared by ``fishbear.frames`` (cut a video into images, optionally sorted by a classifier) and
``fishbear.predict`` (classify a video's frames), so both agree on frame numbers and timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fishbear.core.errors import DataError

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".mts"}
)


def is_video_file(path: Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS and not Path(path).name.startswith(".")


@dataclass(frozen=True)
class Frame:
    index: int  # position in decoding order, from 0
    time: float  # presentation time in seconds
    image: np.ndarray  # H x W x 3 uint8 RGB


def _open(path: Path):
    import av

    if not path.is_file():
        raise DataError(f"Video file {path} does not exist.")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise DataError(f"{path} cannot be opened as a video ({err}). Is it a video file, and complete?") from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path} has no video stream.")
    return container


def frame_count(path: str | Path) -> int | None:
    """Frames in the first video stream, from the header or duration x rate; None when unknown."""
    with _open(Path(path)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        if stream.duration and stream.time_base and stream.average_rate:
            return int(round(float(stream.duration * stream.time_base * stream.average_rate)))
    return None


def read_frames(path: str | Path, every: int = 1) -> Iterator[Frame]:
    """Every ``every``-th frame of the first video stream, decoded to RGB."""
    import av

    if every < 1:
        raise DataError(f"--every must be 1 or more, got {every}")
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = -1
        try:
            for frame in container.decode(stream):
                index += 1
                if index % every:
                    continue
                time = float(frame.pts * stream.time_base) if frame.pts is not None else index / float(stream.average_rate or 1)
                yield Frame(index, time, frame.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as err:
            raise DataError(f"{path}: decoding stopped at frame {index + 1} ({err}); the file may be cut short.") from None


def write_video(path: str | Path, images: Iterable[np.ndarray], fps: int = 25, crf: int = 18) -> Path:
    """Encode H x W x 3 uint8 frames as H.264 (yuv420p, so odd sizes lose their last row/column);
    ``crf`` 18 is visually near-lossless, so frames cut back out are close to the originals."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = None
        for image in images:
            if stream is None:
                stream = container.add_stream("libx264", rate=fps)
                stream.width, stream.height = image.shape[1] // 2 * 2, image.shape[0] // 2 * 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf)}
            frame = np.ascontiguousarray(image[: stream.height, : stream.width])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        if stream is None:
            raise DataError(f"no frames to write to {path}")
        container.mux(stream.encode())
    return path


def gray_world(image: np.ndarray) -> np.ndarray:
    """White balance under the grey-world assumption: scale each channel to the common mean.

    Underwater light loses red first, so frames come out blue-green; equalising the channel
    means brings back contrast between fish and water that a network trained on such frames can use.
    """
    pixels = image.astype(np.float32)
    means = pixels.reshape(-1, 3).mean(axis=0)
    gains = means.mean() / np.maximum(means, 1.0)
    return np.clip(pixels * gains, 0, 255).astype(np.uint8)


def enhance(image: np.ndarray, clip_limit: float = 2.0, tiles: int = 8) -> np.ndarray:
    """Grey-world white balance, then CLAHE on the lightness channel (albumentations' CLAHE)."""
    import albumentations as A

    clahe = A.CLAHE(clip_limit=(clip_limit, clip_limit), tile_grid_size=(tiles, tiles), p=1.0)
    return clahe(image=gray_world(image))["image"]
