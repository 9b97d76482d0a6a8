"""One test module per task kind (``fishbear/kinds/<kind>``), and what they share."""

import csv

# in-process runs without workers, sanity steps, logger, progress bar or augmentation
QUIET = ["data.num_workers=0", "trainer.num_sanity_val_steps=0", "logger=none", "trainer.enable_progress_bar=false",
         "data.augment=null"]


def read_rows(path):
    """A CSV's rows as dicts (predictions, frames)."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
