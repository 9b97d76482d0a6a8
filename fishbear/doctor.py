"""``python -m fishbear.doctor``: what this install is made of and what a run would use.

One line per fact, the lines a bug report needs (as Ultralytics' ``yolo checks``): Python and the
libraries fishbear stands on, whether torch and torchvision belong together, CUDA/cuDNN and the
device ``trainer=default`` would pick, the data cache, and the pretrained weights already in
torch's cache (so a user knows which ``model.pretrained=true`` runs work offline). It starts no
training and downloads nothing; it exits 1 when something fishbear needs is broken, else 0.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import fishbear
from fishbear.conf import CONF_DIR

# what fishbear's model configs can ask torchvision for (arch, encoder and backbone choices)
TORCHVISION_WEIGHTS_ARCHS = ("resnet18", "resnet34", "resnet50", "vgg16", "mobilenet_v2",
                             "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn")
def required_distributions() -> list[str]:
    """Every distribution fishbear's install requires, read from its own metadata (pyproject's
    ``dependencies``), so the list can never miss one; the hand list is the fallback for a source
    tree run without an install."""
    import re

    try:
        requires = metadata.requires("fishbear") or []
    except metadata.PackageNotFoundError:
        requires = []
    names = [re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0] for req in requires if "extra ==" not in req]
    return names or ["torch", "torchvision", "lightning", "hydra-core", "omegaconf", "torchmetrics", "pycocotools",
                     "tensorboard", "scikit-learn", "albumentations", "matplotlib", "pillow", "numpy", "imagehash",
                     "tqdm", "av", "optuna", "optuna-integration", "hydra-submitit-launcher", "hydra-joblib-launcher"]
LOCK_FILE = Path(fishbear.__file__).resolve().parents[1] / "requirements.lock"


@dataclass
class Line:
    """One fact; ``ok=False`` marks a problem that stops fishbear from working."""

    name: str
    value: str
    ok: bool = True

    def render(self) -> str:
        return f"{'' if self.ok else 'PROBLEM '}{self.name + ':':<18} {self.value}"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def package_lines() -> list[Line]:
    lines = [Line("fishbear", f"{fishbear.__version__} ({Path(fishbear.__file__).parent})"),
             Line("python", f"{platform.python_version()} ({sys.executable}), {platform.platform()}")]
    for dist in required_distributions():
        version = _version(dist)
        lines.append(Line(dist, version or "not installed: pip install -c requirements.lock -e .", version is not None))
    return lines


def torch_lines() -> list[Line]:
    """torch's build, and whether torchvision's compiled operators load beside it (a torchvision
    built for another torch fails here with 'operator torchvision::nms does not exist')."""
    try:
        import torch
    except Exception as err:  # noqa: BLE001 (an import that fails is the finding)
        return [Line("torch", f"does not import: {type(err).__name__}: {err}", False)]
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    cudnn = "none"
    if torch.backends.cudnn.is_available():
        number = torch.backends.cudnn.version()  # 92400 for 9.24.0
        cudnn = f"{number // 10000}.{number % 10000 // 100}.{number % 100}"
    lines = [Line("torch build", f"{torch.__version__}, {build}, cuDNN {cudnn}, {torch.get_num_threads()} CPU threads")]
    try:
        import torchvision

        boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        torchvision.ops.nms(boxes, torch.tensor([1.0]), 0.5)
        lines.append(Line("torchvision ops", f"{torchvision.__version__}: compiled operators load"))
    except Exception as err:  # noqa: BLE001
        lines.append(Line("torchvision ops", f"broken beside torch {torch.__version__}: {err}. Reinstall the "
                                             "pair from the lock: pip install -c requirements.lock -e .", False))
    try:
        import av

        lines.append(Line("PyAV video", f"{av.__version__} on FFmpeg {getattr(av, 'ffmpeg_version_info', '?')}"))
    except Exception as err:  # noqa: BLE001
        lines.append(Line("PyAV video", f"does not import: {err}", False))
    return lines


def device_lines() -> list[Line]:
    """What ``trainer=default`` resolves to on this machine: the composed config's precision and
    memory format, and the device Lightning's ``accelerator: auto`` takes."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    import fishbear.engine.config  # noqa: F401  (the resolvers the trainer config uses)

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        trainer = compose("train").trainer
    GlobalHydra.instance().clear()
    if CUDAAccelerator.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        device = f"cuda, {torch.cuda.device_count()} x {', '.join(names)}"
    elif MPSAccelerator.is_available():
        device = "mps (Apple GPU)"
    else:
        device = f"cpu ({os.cpu_count()} cores; no CUDA device visible)"
    memory = "channels_last" if trainer.channels_last else "contiguous (NCHW)"
    return [Line("trainer=default", f"{device}; precision {trainer.precision}; {memory}")]


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def cache_lines() -> list[Line]:
    """The data cache (``$FISHBEAR_DATA``) must be writable: generated and downloaded data go there."""
    root = Path(os.environ.get("FISHBEAR_DATA") or "~/.cache/fishbear").expanduser()
    existing = _nearest_existing(root)
    writable = existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
    free = shutil.disk_usage(existing).free / 2**30
    state = "exists" if root.exists() else f"will be created under {existing}"
    value = f"{root} ({state}; {'writable' if writable else 'NOT writable: set FISHBEAR_DATA'}; {free:.1f} GiB free)"
    return [Line("data cache", value, writable)]


def weights_lines() -> list[Line]:
    """The torchvision weight files fishbear's models can use, and which of them are cached."""
    import torch
    import torchvision

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    cached, missing = [], 0
    for arch in TORCHVISION_WEIGHTS_ARCHS:
        for weights in torchvision.models.get_model_weights(arch):
            filename = weights.url.rsplit("/", 1)[-1]
            if (folder / filename).is_file():
                cached.append(f"{arch} {weights.name} ({filename})")
            else:
                missing += 1
    found = "; ".join(cached) if cached else "none"
    return [Line("weights cache", f"{folder}: {found} ({missing} other known weight files not downloaded; "
                                  "model.pretrained=true fetches them on first use)")]


def lock_lines() -> list[Line]:
    """From a source checkout: the installed versions that differ from ``requirements.lock``."""
    if not LOCK_FILE.is_file():
        return []
    differ = []
    for line in LOCK_FILE.read_text().splitlines():
        name, sep, pinned = line.split("#", 1)[0].strip().partition("==")
        if not sep:
            continue
        installed = _version(name)
        if installed is not None and installed.split("+")[0] != pinned.strip():
            differ.append(f"{name} {installed} (lock {pinned.strip()})")
    value = "installed set matches" if not differ else "differs: " + ", ".join(differ)
    return [Line("requirements.lock", value)]


def report() -> list[Line]:
    lines = package_lines()
    if any(line.name == "torch" and not line.ok for line in lines):
        return lines + cache_lines()
    lines += torch_lines()
    if all(line.ok for line in lines):
        lines += device_lines() + weights_lines()
    return lines + cache_lines() + lock_lines()


def main() -> int:
    lines = report()
    for line in lines:
        print(line.render())
    problems = [line for line in lines if not line.ok]
    print(f"{len(problems)} problem(s)" if problems else "fishbear is ready")
    return 1 if problems else 0


def cli(argv: list[str]) -> int:
    """``fishbear doctor`` and ``python -m fishbear.doctor`` (no arguments)."""
    from fishbear.engine.commandline import asks_for_help, command_help

    if asks_for_help(argv):
        print(command_help("fishbear.doctor"))
        return 0
    return main()


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
