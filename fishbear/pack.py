"""``fishbear pack data=NAME out=DIR [max_side=N] [quality=Q] [workers=N]`` (overrides of
``conf/pack.yaml``).

Reads the dataset as a run would (the data config's reader, its checks and its split), then writes
each split as LitData shards with the kind and classes in ``fishbear-pack.json``
(:mod:`fishbear.data.pack`). ``fishbear train data=NAME data.root=DIR`` trains from the pack: the
same images, labels and split, the same augmentation and report. A stopped pack is completed by the
same command; ``out`` holding anything else is refused, and a pack is not packed again.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from fishbear.core.errors import DataError
from fishbear.engine.commandline import check_ranges, compose_cli, user_errors_exit

USAGE = ("fishbear pack data=NAME out=DIR|s3://bucket/prefix [data.root=...] [max_side=N] [quality=90] [workers=1] "
         "[chunk_bytes=64MB]")


def pack(cfg: DictConfig) -> dict[str, Any]:
    """Pack ``cfg.data`` into ``cfg.out``; returns the pack's index."""
    from fishbear.core.containment import is_within
    from fishbear.data.pack import PackSettings, is_pack, write_pack
    from fishbear.data.pack_place import is_url, place_of
    from fishbear.engine.experiment import build_datamodule
    from fishbear.engine.run_folder import fingerprint

    started = time.perf_counter()
    settings = PackSettings(max_side=None if cfg.max_side is None else int(cfg.max_side), quality=int(cfg.quality),
                            workers=int(cfg.workers), chunk_bytes=cfg.chunk_bytes)
    out = place_of(str(cfg.out))
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    if is_url(datamodule.location) or is_pack(datamodule.root):
        raise DataError(f"data.root={datamodule.location} is a pack already: train from it (data.root=...), or pack "
                        "the folder it was made from.")
    if not out.remote and is_within(Path(out.url), datamodule.root):
        raise DataError(f"out={out.url} is inside the dataset {datamodule.root}; give a folder outside it.")
    datamodule.setup("fit")
    catalog = datamodule.catalog
    index = write_pack(catalog, datamodule.root, datamodule.kind, fingerprint(catalog.splits, datamodule.root), out,
                       settings, source=f"{datamodule.name}: {datamodule.root}")
    counts = ", ".join(f"{split} {info['count']}" for split, info in index["splits"].items())
    if index.get("already"):
        print(f"{out.url} holds this pack already ({counts}); nothing written.")
    else:
        size = "" if out.remote else f"{sum(p.stat().st_size for p in Path(out.url).rglob('*') if p.is_file()) / 2**20:.1f} MB "
        print(f"Packed {datamodule.name} ({index['kind']}, {len(index['classes'])} classes; {counts}) into {out.url}: "
              f"{size}in {time.perf_counter() - started:.1f} s. Train from it with data.root={out.url}")
    return index


@user_errors_exit
def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = compose_cli("pack", sys.argv[1:] if argv is None else argv, USAGE)
    return pack(check_ranges(cfg, counts=("quality", "workers")))


def cli(argv: list[str]) -> int:
    """``fishbear pack ...`` and ``python -m fishbear.pack ...``."""
    main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
