"""fishbear: computer-vision experiments composed with Hydra and run by Lightning."""

import os

# albumentations checks PyPI for a newer release when imported; runs are often offline
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
