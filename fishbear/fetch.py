"""``python -m fishbear.fetch urls=PATH out=DIR [class=NAME] [square=pad] [test_per_class=5]``
(Hydra overrides of ``conf/fetch.yaml``).

Image-search URL lists to a dataset ``data=folder data.root=DIR`` trains on: every URL fetched
with timeouts, retries and a size cap, every image decoded in full and re-encoded, exact copies
kept once, near copies and label conflicts reported, and ``DIR/manifest.csv`` saying what became
of each input line (ok, failed, duplicate, skipped; HTTP status, content type, bytes, sha256,
pixel size, the file written, the error). Running it again resumes: nothing already fetched is
fetched again (:mod:`fishbear.data.web_dataset` says how). A file of yours in ``DIR`` is never
replaced.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fishbear.data.http_fetch import FetchSettings
from fishbear.data.web_dataset import Outcome, fetch_dataset
from fishbear.data.web_pictures import CleanSettings, settings_from
from fishbear.engine.commandline import compose_cli, user_errors_exit

COMMAND_KEYS = ("urls", "out", "class", "retry_failed", "overwrite")
USAGE = "fishbear fetch urls=PATH out=DIR [class=NAME] " + " ".join(
    f"[{f.name}={f.default}]" for cls in (FetchSettings, CleanSettings) for f in fields(cls) if f.name != "user_agent")


def _progress(done: int, total: int) -> None:
    if done == total or done % 50 == 0:
        print(f"\rfetched {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)


def fetch(cfg: DictConfig) -> Outcome:
    values = OmegaConf.to_container(cfg, resolve=True)
    http, clean = settings_from({k: v for k, v in values.items() if k not in COMMAND_KEYS})
    outcome = fetch_dataset(str(cfg.urls), Path(str(cfg.out)), cfg["class"], http, clean,
                            retry_failed=bool(cfg.retry_failed), overwrite=bool(cfg.overwrite),
                            progress=_progress if sys.stderr.isatty() else None)
    out = Path(str(cfg.out))
    print(outcome.summary())
    counts = {}
    for row in outcome.rows:
        if row.status == "ok":
            split, label = row.file.split("/")[:2]
            counts[(split, label)] = counts.get((split, label), 0) + 1
    shown = ", ".join(f"{split}/{label} {n}" for (split, label), n in sorted(counts.items()))
    print(f"Dataset: {out} ({shown}); manifest: {out / 'manifest.csv'}. Train with: fishbear train data=folder "
          f"data.root={out}")
    return outcome


@user_errors_exit
def main(argv: list[str] | None = None) -> Outcome:
    return fetch(compose_cli("fetch", sys.argv[1:] if argv is None else argv, USAGE))


def cli(argv: list[str]) -> int:
    """``fishbear fetch ...`` and ``python -m fishbear.fetch ...``."""
    main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
