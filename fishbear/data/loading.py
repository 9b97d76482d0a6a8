"""How a dataset's files become batches: the loader's settings and the reading rules, typed.

The data config stays flat (``data.batch_size=32``, ``data.on_bad_image=skip``: what people type
and sweep); :func:`fishbear.engine.data_config.image_data` groups its keys into these objects and
the data module's other settings (:class:`~fishbear.data.feed.Feed`,
:class:`~fishbear.data.splits.SplitPlan`, :class:`~fishbear.data.duplicates.DuplicatePolicy`), each
checked once when it is made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from fishbear.core.errors import DataError
from fishbear.data.catalog import Catalog
from fishbear.data.images import header_problem, image_problem

log = logging.getLogger(__name__)

BAD_IMAGE_RULES = ("error", "skip")


def default_num_workers() -> int:
    """Leave the main process a core: the loader overlaps decoding with the GPU's compute. (A run
    whose model trains on the CPU is planned otherwise: ``fishbear.engine.experiment``.)"""
    from fishbear.core.runtime import available_cores

    return max(0, min(8, available_cores() - 1))


@dataclass(frozen=True)
class LoaderSettings:
    """``batch_size``; ``num_workers`` (None: one per core but one, at most 8); ``pin_memory``
    (None: when CUDA is there); ``persistent_workers``: kept between epochs; ``stream``: a pack's
    training split read in LitData's chunk order (:mod:`fishbear.data.pack_stream`)."""

    batch_size: int = 64
    num_workers: int = field(default_factory=default_num_workers)
    pin_memory: bool = False
    persistent_workers: bool = True
    stream: bool = False

    @classmethod
    def of(cls, batch_size: int = 64, num_workers: int | None = None, pin_memory: bool | None = None,
           persistent_workers: bool = True, stream: bool = False) -> LoaderSettings:
        """From the config's values, with None meaning fishbear's choice for this machine."""
        import torch

        return cls(int(batch_size), default_num_workers() if num_workers is None else int(num_workers),
                   torch.cuda.is_available() if pin_memory is None else bool(pin_memory), bool(persistent_workers),
                   bool(stream))


@dataclass(frozen=True)
class ReadSettings:
    """``on_bad_image``: ``error`` stops at the first unreadable file (named in the message),
    ``skip`` decodes every image once at setup and leaves unreadable ones out; ``cache_dir``: where
    image hashes (and, with ``decode_cache``, training images decoded once) are kept."""

    on_bad_image: str = "error"
    decode_cache: bool = False
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.on_bad_image not in BAD_IMAGE_RULES:
            raise DataError(f"data.on_bad_image={self.on_bad_image!r}: use 'error' or 'skip'")
        if self.decode_cache and self.cache_dir is None:
            raise DataError("data.decode_cache=true needs data.cache_dir (a folder for the decoded arrays)")

    def check_headers(self, catalog: Catalog) -> None:
        """A file of any split that is no image stops the run now, not after the training when the
        test split is read (``on_bad_image=skip`` decodes every file instead and leaves them out)."""
        for split, samples in catalog.splits.items():
            for sample in samples:
                problem = header_problem(sample.image)
                if problem is not None:
                    raise DataError(
                        f"Image file {sample.image} ({split} split) cannot be read as an image ({problem}). "
                        "Delete or replace the file, or set data.on_bad_image=skip to leave such files out."
                    )

    def drop_unreadable(self, catalog: Catalog) -> None:
        """``on_bad_image=skip``: every file decoded once; the unreadable ones left out, named in the
        log and counted in the catalog's ``skipped`` (the report says them)."""
        for split, samples in catalog.splits.items():
            kept = []
            for sample in samples:
                problem = image_problem(sample.image)
                if problem is None:
                    kept.append(sample)
                else:
                    catalog.skipped.append((sample.image, problem))
            catalog.splits[split] = kept
        if catalog.skipped:
            shown = "; ".join(f"{path} ({why})" for path, why in catalog.skipped[:5])
            log.warning("data.on_bad_image=skip: left out %d unreadable file(s): %s", len(catalog.skipped), shown)
