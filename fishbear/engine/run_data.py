"""A run's data, rebuilt from its checkpoint alone: the composed config travels in the checkpoint
(``ModelMeta.provenance.run``), so ``export`` and ``review`` find the run's own splits wherever
the run folder has gone, and say whether a split is still the one the weights were tested on."""

from __future__ import annotations

from typing import Any

from fishbear.core.errors import DataError


def run_config(meta: Any) -> Any:
    """The run's composed config (without Hydra's section) as an OmegaConf node."""
    from omegaconf import OmegaConf

    run = meta.provenance.run or {}
    text = run.get("config") or (run.get("hydra_files") or {}).get("config.yaml")
    if not text:
        raise DataError("the checkpoint carries no run config (it was written before fishbear recorded one), so its "
                        "splits are unknown; give the pictures another way (images=FOLDER).")
    cfg = OmegaConf.create(text)
    cfg.paths.output_dir = "."
    return cfg


def run_datamodule(meta: Any) -> Any:
    """The run's data module, set up at the checkpoint's size, normalisation and fit."""
    from fishbear.engine.experiment import build_datamodule

    datamodule = build_datamodule(run_config(meta))
    datamodule.use_feed(meta.feed)
    try:
        datamodule.prepare_data()
        datamodule.setup("test")
    except DataError as err:
        raise DataError(f"the run's data cannot be read ({err}); run where the run was trained (its data.root may "
                        "be relative), or give the pictures another way.") from None
    if datamodule.store is not None:  # export's parity and review show and read picture files
        raise DataError(f"the run was trained from the pack at {datamodule.location}, whose pictures are not files; use the "
                        f"folder it was packed from ({datamodule.store.index.get('source', 'its fishbear-pack.json says')}), "
                        "or give the pictures another way (images=FOLDER).")
    return datamodule


def split_note(datamodule: Any, meta: Any, split: str) -> str:
    """``test split at ROOT (the split the run tested)``, or why it may not be."""
    from fishbear.engine.run_folder import fingerprint

    saved = (meta.provenance.data_fingerprint or {}).get(split)
    now = fingerprint({split: datamodule.samples(split)}, datamodule.root)[split]
    same = "the split the run tested" if saved == now else (
        "NOT the split recorded in the checkpoint (the data changed since)" if saved else "no fingerprint recorded")
    return f"{split} split at {datamodule.root} ({same})"
