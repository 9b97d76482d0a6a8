"""Image sizes and the letterbox: the small geometry every layer shares (transforms, kinds, the
predictor, exported models), in one place below all of them."""

from __future__ import annotations

PAD_MASK = 255  # mask value of letterbox pixels (data.resize=pad): no class, not scored


def image_size_of(value: object, key: str = "data.image_size") -> int | tuple[int, int]:
    """The one check of an image size a person typed: one side, or ``[height, width]``, whole and
    positive; returned as an int (square) or a ``(height, width)`` pair."""
    from fishbear.core.errors import ConfigError

    if isinstance(value, (str, bytes)) or not isinstance(value, int) and not hasattr(value, "__iter__"):
        raise ConfigError(f"{key}={value!r}: give one side ({key}=224) or [height, width] ({key}=[192,336]).")
    sides = [value] if isinstance(value, int) else list(value)  # type: ignore[call-overload]
    if not isinstance(value, int) and len(sides) != 2:
        raise ConfigError(f"{key}={sides}: give one side ({key}=224) or [height, width] ({key}=[192,336]); colour "
                          "channels are not part of it.")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sides):
        raise ConfigError(f"{key}={sides if len(sides) == 2 else value}: sides are whole numbers of pixels, 1 or more.")
    height, width = sides[0], sides[-1]
    return height if height == width else (height, width)


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


# the picture between a file and the model's input (a 1 x 30,000,000 strip "cropped" to 224 x 224 is
# first scaled to 224 x 6.7e9): above this many pixels it is refused with the reason, not allocated
MAX_FIT_PIXELS = 50_000_000


def fit_problem(height: int, width: int, image_size: int | tuple[int, int] | list[int], resize: str) -> str | None:
    """Why a ``height`` x ``width`` picture cannot be fitted to ``image_size`` by ``resize``
    (``crop`` scales the short side to cover, ``pad`` the long side to fit, ``squish`` straight to
    the size), or None when it can. The standalone predictor holds the same rule."""
    model_h, model_w = as_hw(image_size)
    if height < 1 or width < 1:
        return f"it has no pixels ({width} x {height})"
    if resize == "crop":
        scale = max(model_h / height, model_w / width)
    elif resize == "pad":
        scale = min(model_h / height, model_w / width)
    else:
        return None
    between = (max(1, round(height * scale)), max(1, round(width * scale)))
    if between[0] * between[1] > MAX_FIT_PIXELS:
        return (f"its {width} x {height} pixels are too far from the model's {model_w} x {model_h} proportions: fitting "
                f"it by {resize} would make a {between[1]} x {between[0]} picture first")
    return None
