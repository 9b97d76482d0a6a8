"""fishbear's Hydra config tree, shipped inside the package so an installed fishbear finds it."""

from pathlib import Path

CONF_DIR = Path(__file__).parent
