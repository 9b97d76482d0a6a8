"""A dotted path (a config's ``_target_``) to the object it names, or one clear error."""

from __future__ import annotations

import importlib
from typing import Any

from fishbear.core.errors import ConfigError


def locate(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"_target_: {path} cannot be imported; check the spelling of the class path") from None
