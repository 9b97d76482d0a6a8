"""Image sizes and the letterbox: the small geometry every layer shares (transforms, kinds, the
predictor, exported models), in one place below all of them."""

from __future__ import annotations

PAD_MASK = 255  # mask value of letterbox pixels (data.resize=pad): no class, not scored


def as_hw(image_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``image_size`` is one side (square) or ``[height, width]`` (CamVid's 3:4 frames)."""
    if isinstance(image_size, (int, float)):
        return int(image_size), int(image_size)
    height, width = (int(v) for v in image_size)
    return height, width


def letterbox(resize: str | None, image_size: int | list[int], height: int,
              width: int) -> tuple[float, float, float] | None:
    """For a model trained with ``data.resize=pad``: ``(factor, left, top)`` such that a pixel of
    the original ``height`` x ``width`` image lands at ``original * factor + (left, top)`` in the
    model's input; None for the other fits (the whole frame resized)."""
    if resize != "pad":
        return None
    model_h, model_w = as_hw(image_size)
    factor = min(model_h / height, model_w / width)
    return factor, (model_w - width * factor) / 2, (model_h - height * factor) / 2
