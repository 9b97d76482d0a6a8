"""Task kinds by name, for inference from a checkpoint's ``kind``."""

from __future__ import annotations

from fishbear.tasks.base import BaseTask


def task_class(kind: str) -> type[BaseTask]:
    from fishbear.tasks.classify import ClassificationTask
    from fishbear.tasks.detect import DetectionTask
    from fishbear.tasks.multilabel import MultiLabelTask
    from fishbear.tasks.points import PointsTask
    from fishbear.tasks.segment import SegmentationTask

    kinds = {cls.kind: cls for cls in (ClassificationTask, MultiLabelTask, SegmentationTask, PointsTask,
                                          DetectionTask)}
    try:
        return kinds[kind]
    except KeyError:
        raise ValueError(f"unknown task kind {kind!r}; known: {', '.join(kinds)}") from None
