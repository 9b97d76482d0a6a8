"""A box dataset's boxes counted per image as regression values (fish per frame from the fish
trap's boxes): one reader per box format serves the regression kind too."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog, Sample


@dataclass(frozen=True)
class BoxCounts:
    """A box catalog (any box reader: VOC, VIA, VoTT, CNTK) as counts: the number of boxes per
    image, one value ``count``, or one per class (``<class>_count``) with ``per_class``.
    Images without boxes count 0: the empty frames of a video trap."""

    per_class: bool = False

    def __call__(self, catalog: Catalog) -> Catalog:
        if catalog.kind != "detect":
            raise DataError(f"BoxCounts counts boxes, but the reader produced '{catalog.kind}' labels; use a box "
                            "reader (data/reader=voc|via|vott_csv|vott_json|cntk).")
        classes = [f"{name}_count" for name in catalog.classes] if self.per_class else ["count"]

        def count(boxes) -> np.ndarray:
            if not self.per_class:
                return np.array([len(boxes)], dtype=np.float32)
            return np.bincount(np.asarray(boxes.codes, dtype=np.int64), minlength=len(catalog.classes)).astype(np.float32)

        splits = {split: [Sample(s.image, count(s.target)) for s in samples] for split, samples in catalog.splits.items()}
        return Catalog(splits=splits, classes=classes, kind="regress", skipped=list(catalog.skipped))
