"""The ``fishbear`` command: ``fishbear <command> [key=value ...]``, one word per job, as
Ultralytics' ``yolo``. Each command is a module at the top of the package (``fishbear.train``...)
with a ``cli(argv)`` function; ``python -m fishbear.<command>`` runs the same function, so both
launch styles take the same Hydra overrides. :data:`COMMANDS` is the one list of commands: the
help below, the console script and the structure test all read it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    hydra: bool = False  # an @hydra.main job (its own --help lists the config); else key=value options

    @property
    def module(self) -> str:
        return f"fishbear.{self.name}"


COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("train", "train, test and report a run: fishbear train data=bears model=resnet34", hydra=True),
    Command("evaluate", "test a checkpoint on data and write its report: fishbear evaluate ckpt=... data=...",
            hydra=True),
    Command("fetch", "image-search URL lists to a clean dataset with its manifest: fishbear fetch urls=DIR out=DIR"),
    Command("predict", "predictions for images, folders or a video as CSV (and masks, boxes): fishbear predict "
                       "ckpt=... input=..."),
    Command("review", "look at the images a model doubts, keep / remove / relabel them in the browser, apply: "
                      "fishbear review run=RUN_DIR"),
    Command("frames", "cut a video into frames, optionally sorted by a checkpoint: fishbear frames video=... out=..."),
    Command("export", "a checkpoint as ONNX with a standalone predictor and a parity report: fishbear export "
                      "ckpt=RUN/checkpoints/best.ckpt"),
    Command("serve", "a model behind HTTP with a demo page (LitServe): fishbear serve ckpt=RUN/checkpoints/best.ckpt"),
    Command("adapt", "a trained model fitted to new footage without labels, as a new run: fishbear adapt "
                     "ckpt=RUN/checkpoints/best.ckpt frames=DIR|video=FILE"),
    Command("pack", "a dataset as shards that stream (LitData); train from it with data.root=DIR: fishbear pack "
                    "data=... out=DIR"),
    Command("convert", "a box dataset from one label format into another: fishbear convert src=... src_format=voc "
                       "dst=... dst_format=coco"),
    Command("lr_find", "the learning-rate range test of a run's config: fishbear lr_find data=... model=...",
            hydra=True),
    Command("doctor", "what this install is made of and what a run would use"),
)}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: fishbear <command> [key=value ...]   (the same as python -m fishbear.<command> ...)", "",
             "commands:"]
    lines += [f"  {c.name:<{width}}  {c.summary}" for c in COMMANDS.values()]
    lines += ["", "fishbear <command> --help shows a command's settings."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``fishbear <command> ...``: dispatch to the command's ``cli``. A Hydra command sees the
    command line it would see under ``python -m fishbear.<command>`` (its module as ``argv[0]``:
    Lightning's DDP launcher re-runs that to start the other processes)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    command = COMMANDS.get(name)
    if command is None:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        print(f"error: {name!r} is not a fishbear command{hint} ({', '.join(COMMANDS)}; fishbear --help)",
              file=sys.stderr)
        return 2
    spec = importlib.util.find_spec(command.module)
    assert spec is not None and spec.origin is not None
    sys.argv = [spec.origin, *rest]
    main_module = sys.modules.get("__main__")
    if main_module is not None and getattr(main_module, "__spec__", None) is not None:
        main_module.__spec__ = spec  # python -m fishbear: DDP's processes start as python -m fishbear.<command>
    module = importlib.import_module(command.module)
    return int(module.cli(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
