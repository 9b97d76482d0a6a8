"""``fishbear adapt ckpt=RUN/checkpoints/best.ckpt frames=DIR|video=FILE [method=colour|bn|tent|[colour,bn]] [out=DIR]``
(overrides of ``conf/adapt.yaml``).

Fits a trained model to new footage without its labels (:mod:`fishbear.engine.adapt`) and writes a
new run folder: ``checkpoints/best.ckpt`` (the adapted weights and normalisation, its provenance
naming the source checkpoint, the footage's fingerprint and the methods), ``adapt.json`` and
``adapt.md``. The source run is only read. Every command that takes a checkpoint takes the adapted
one: ``predict``, ``frames sort_with=``, ``evaluate``, ``export``, ``serve``.
"""

from __future__ import annotations

import sys
from typing import Any

from fishbear.engine.commandline import check_ranges, compose_cli, user_errors_exit

USAGE = ("fishbear adapt ckpt=PATH frames=DIR|video=FILE [method=colour|bn|tent|pseudo|[colour,pseudo]] [labelled=DIR] "
         "[reference=DIR] [out=DIR] [every=1] [limit=2000] [overwrite=false]")


@user_errors_exit
def main(argv: list[str] | None = None) -> dict[str, Any]:
    from fishbear.engine.adapt.adapted import adapt_run

    cfg = compose_cli("adapt", sys.argv[1:] if argv is None else argv, USAGE)
    return adapt_run(check_ranges(cfg, counts=("every", "limit", "batch_size", "tent_epochs", "pseudo_steps"),
                                  fractions=("pseudo_threshold", "review_share")))


def cli(argv: list[str]) -> int:
    """``fishbear adapt ...`` and ``python -m fishbear.adapt ...``."""
    main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
