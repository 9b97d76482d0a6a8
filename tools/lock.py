"""Regenerate ``requirements.lock`` (``make lock``): pyproject.toml's ranges resolved afresh.

pip resolves ``-e .[dev]`` in a dry run as if nothing were installed, with torch and torchvision
held at the pair named below (chosen on purpose, not whatever the day's index offers), and the
result is written as exact pins. The lock is used as a pip *constraints* file, so a pin for a
package another platform does not need (the CUDA libraries on macOS) is simply ignored there.

    python tools/lock.py                      # the pair below
    python tools/lock.py --torch 2.15.0 --torchvision 0.29.2   # an upgrade, then make test
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
TORCH, TORCHVISION = "2.14.1", "0.29.1"

HEADER = """\
# requirements.lock: the exact set fishbear is tested with; the README's install and .ci/run use it as
# pip constraints:  pip install -c requirements.lock -e ".[dev]"
# pyproject.toml keeps ranges for those who install fishbear as a library. Regenerate with `make lock`
# (tools/lock.py: pyproject's ranges resolved afresh by pip, torch held at the pair below), then run
# `make test`. Resolved on {python} {machine}, {date}; other platforms take what applies to them.
#
# torch {torch} + torchvision {torchvision}, on purpose: it is the newest pair that new machines of this
# project carry on disk, so an install takes it offline in about 90 s. torch 2.15.0 (with torchvision
# 0.29.2, the newest pair pyproject allows) passes the same suite (see the README), but each install
# would download several GB of CUDA wheels. Raise the pair here when the machines carry a newer one.
"""


def resolve(torch: str, torchvision: str) -> list[tuple[str, str]]:
    """Every distribution ``pip install -e .[dev]`` would install into an empty environment."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                   "--report", str(report), "-e", f"{REPO}[dev]", f"torch=={torch}", f"torchvision=={torchvision}"]
        subprocess.run(command, check=True)
        installs = json.loads(report.read_text())["install"]
    pins = {(item["metadata"]["name"].lower().replace("_", "-"), item["metadata"]["version"])
            for item in installs if item["metadata"]["name"].lower() != "fishbear"}
    return sorted(pins)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch", default=TORCH)
    parser.add_argument("--torchvision", default=TORCHVISION)
    parser.add_argument("--output", type=Path, default=LOCK)
    args = parser.parse_args()
    import datetime

    pins = resolve(args.torch, args.torchvision)
    header = HEADER.format(python=f"CPython {platform.python_version()}", machine=f"{platform.system()} {platform.machine()}",
                           date=datetime.date.today().isoformat(), torch=args.torch, torchvision=args.torchvision)
    body = "".join(f"{name}=={version}\n" for name, version in pins)
    args.output.write_text(header + body)
    print(f"wrote {args.output}: {len(pins)} pins, torch {args.torch}, torchvision {args.torchvision}")


if __name__ == "__main__":
    main()
