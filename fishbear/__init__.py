"""fishbear: computer-vision experiments composed with Hydra and run by Lightning."""

__version__ = "0.1.0"
