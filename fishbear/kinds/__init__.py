"""The one registry of task kinds: name -> :class:`~fishbear.kinds.base.Kind`.

A dataset config names its kind once, by choosing the task config of that kind
(``/task@_global_.task: segment``); the task class says which kind it trains, the data module
builds its targets with that kind, and a reader that produces another kind is refused by name.
"""

from __future__ import annotations

from fishbear.core.errors import ConfigError
from fishbear.kinds import classify, detect, multilabel, points, regress, segment
from fishbear.kinds.base import Kind

KINDS: dict[str, Kind] = {module.KIND.name: module.KIND
                          for module in (classify, multilabel, segment, points, detect, regress)}
# what a data module or pipeline built without a task is (plain image classification)
DEFAULT_KIND = classify.KIND.name


def get_kind(kind: Kind | str | None) -> Kind:
    """A kind by name (None: the default, classification); a Kind is passed through."""
    if isinstance(kind, Kind):
        return kind
    try:
        return KINDS[DEFAULT_KIND if kind is None else kind]
    except KeyError:
        raise ConfigError(f"unknown task kind {kind!r}; known: {', '.join(KINDS)}") from None


def kind_of_task(target: str) -> Kind:
    """The kind a task class (a task config's ``_target_``) trains."""
    from fishbear.core.errors import locate

    task_class = locate(target)
    kind = getattr(task_class, "kind", None)
    if not isinstance(kind, Kind):
        raise ConfigError(f"task._target_={target} is not a fishbear task (it names no kind); use a task= config "
                          f"of one of the kinds {', '.join(KINDS)}.")
    return kind


__all__ = ["KINDS", "DEFAULT_KIND", "Kind", "get_kind", "kind_of_task"]
