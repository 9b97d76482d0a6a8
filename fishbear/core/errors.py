"""Errors meant for the person at the keyboard, not for a debugger.

Anything raised as a :class:`FishbearError` is printed by the entry points as one message, with no
traceback: the message itself must say what was given, what is wrong and how to fix it.
"""

from __future__ import annotations


class FishbearError(Exception):
    """A problem with the user's input (data, config, checkpoint) that they can fix."""


class DataError(FishbearError):
    """A dataset folder, image or label file that cannot be used as it is."""


class ConfigError(FishbearError):
    """A configuration value of the wrong type or out of range."""


class CheckpointError(FishbearError):
    """A checkpoint that is missing or does not fit what was asked of it."""
