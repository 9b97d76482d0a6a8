"""What every entry point shares: user errors become one message and exit code 2, no traceback."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from fishbear.errors import FishbearError

F = TypeVar("F", bound=Callable[..., Any])


def route_library_logs_to_root() -> None:
    """Lightning and torchmetrics add a stderr handler of their own and also pass messages on to
    the root logger that Hydra set up (console and train.log): each message printed twice. Leave
    them to the root logger when it has handlers."""
    if not logging.getLogger().handlers:
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "torchmetrics"):
        library = logging.getLogger(name)
        for handler in list(library.handlers):
            if type(handler) is logging.StreamHandler:
                library.removeHandler(handler)
        library.propagate = True


def _without_worker_traceback(message: str) -> str:
    """A DataLoader worker re-raises our error with its traceback folded into the message;
    keep the message itself (the last line, after ``module.Class: ``)."""
    if "Original Traceback" not in message:
        return message
    last = [line for line in message.splitlines() if line.strip()][-1]
    return last.split(": ", 1)[1] if ": " in last else last


def user_errors_exit(fn: F) -> F:
    """Print :class:`FishbearError` and config errors as ``error: ...`` and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FishbearError as err:
            message = _without_worker_traceback(str(err))
        except MissingMandatoryValue as err:
            key = getattr(err, "full_key", None) or "?"
            message = f"{key} must be set: add {key}=... to the command line ({str(err).splitlines()[0]})"
        except OmegaConfBaseException as err:
            message = f"configuration problem: {err}"
        print(f"error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(2)

    return wrapper  # type: ignore[return-value]
