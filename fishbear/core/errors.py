"""Errors meant for the person at the keyboard, not for a debugger.

Anything raised as a :class:`FishbearError` is printed by the entry points as one message, with no
traceback: the message itself must say what was given, what is wrong and how to fix it. A config's
``_target_`` is located here too, so a misspelt class path is one such error.
"""

from __future__ import annotations

import importlib
from typing import Any


class FishbearError(Exception):
    """A problem with the user's input (data, config, checkpoint) that they can fix."""


class DataError(FishbearError):
    """A dataset folder, image or label file that cannot be used as it is."""


class ConfigError(FishbearError):
    """A configuration value of the wrong type or out of range."""


class CheckpointError(FishbearError):
    """A checkpoint that is missing or does not fit what was asked of it."""


def locate(path: str) -> Any:
    """The object a dotted path (a config's ``_target_``) names, or one :class:`ConfigError`."""
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"_target_: {path} cannot be imported; check the spelling of the class path") from None
