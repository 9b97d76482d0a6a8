"""Facts about the machine and the installed libraries, for reports and ``fishbear.doctor``."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("fishbear", "torch", "torchvision", "lightning", "torchmetrics", "pycocotools", "hydra-core", "albumentations",
            "scikit-learn", "numpy")


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        out[name] = package_version(name) or "not installed"
    return out


def package_version(name: str) -> str | None:
    """An installed distribution's version; fishbear's own also when it runs from a checkout on
    ``PYTHONPATH`` (as on a machine lent for a benchmark), where no metadata is installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        if name == "fishbear":
            import fishbear

            return f"{fishbear.__version__} (from a checkout)"
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(accelerator: str | None = None) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"accelerator": accelerator or "cpu", "platform": platform.platform(),
                            "cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available() and accelerator in (None, "gpu", "cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info
