"""CPU inference: PyTorch eager against ONNX Runtime on the same graph, and a fresh process's
first prediction, ``fishbear predict`` against the export's standalone ``predict.py``.

Both sides of each ratio run in this one process, one after the other, on the same input:

- **throughput**: the graph ``fishbear export`` writes (normalisation, network, softmax;
  ``fishbear.engine.deploy.onnx_export.ExportGraph``) for fishbear's default convnet, resnet18 and
  mobilenet_v2 at 224 px (random weights: speed does not depend on them), in eager PyTorch
  (``inference_mode``) and through onnxruntime's CPU provider, both with the same intra-op thread
  count; batch 1 in milliseconds per image, batch 32 in images per second, medians of rounds
  that alternate the two sides (a noisy neighbour slows both);
- **cold start**: wall time of a new process from its start to its first prediction written
  (one image), for ``python -m fishbear.predict ckpt=...`` and ``python export/predict.py``, of
  one tiny model trained and exported here; median of ``--cold`` runs each.

    python benchmarks/inference.py [--threads N] [--rounds 7] [--cold 3] [--json OUT] [--markdown OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import fishbear
from fishbear.engine.checkpoint import build_network
from fishbear.engine.deploy.onnx_export import ExportGraph, trace
from fishbear.kinds.meta import ModelMeta

CONF = Path(fishbear.__file__).parent / "conf" / "model"
MODELS = ("convnet", "resnet18", "mobilenet_v2")
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def graph_of(model: str, size: int) -> ExportGraph:
    cfg = yaml.safe_load((CONF / f"{model}.yaml").read_text())
    meta = ModelMeta(kind="classify", classes=tuple(f"c{i}" for i in range(10)), image_size=size, mean=IMAGENET[0],
                     std=IMAGENET[1], model_cfg=cfg)
    return ExportGraph(build_network(meta), meta).eval()


def _timed(call: Any, repeats: int) -> float:
    call()  # warm
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - started) / repeats


def throughput(model: str, size: int, threads: int, rounds: int) -> dict[str, Any]:
    import onnxruntime as ort

    torch.manual_seed(0)
    graph = graph_of(model, size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(trace(graph).SerializeToString())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out: dict[str, Any] = {"model": model, "parameters": sum(p.numel() for p in graph.parameters())}
    for batch, repeats in ((1, 20), (32, 2)):
        x = np.random.default_rng(0).uniform(0, 255, (batch, 3, size, size)).astype(np.float32)
        sizes = np.full((batch, 2), size, dtype=np.int64)
        tx, ts = torch.from_numpy(x), torch.from_numpy(sizes)

        def eager(tx: torch.Tensor = tx, ts: torch.Tensor = ts) -> Any:
            with torch.inference_mode():
                return graph(tx, ts)

        def onnx(x: np.ndarray = x, sizes: np.ndarray = sizes) -> Any:
            return session.run(None, {"image": x, "original_size": sizes})

        ratios, eager_s, onnx_s = [], [], []
        for _ in range(rounds):
            e, o = _timed(eager, repeats), _timed(onnx, repeats)
            eager_s.append(e)
            onnx_s.append(o)
            ratios.append(e / o)
        difference = float(np.abs(eager()[0].numpy() - onnx()[0]).max())
        e, o = statistics.median(eager_s), statistics.median(onnx_s)
        out[f"batch{batch}"] = {"eager_ms_per_image": 1000 * e / batch, "onnx_ms_per_image": 1000 * o / batch,
                                "eager_images_per_s": batch / e, "onnx_images_per_s": batch / o,
                                "speedup": statistics.median(ratios), "max_abs_difference": difference}
    return out


def cold_start(runs: int, threads: int) -> dict[str, Any]:
    """A tiny default classifier trained and exported in a scratch folder, then each predictor
    started ``runs`` times on one image."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        env["FISHBEAR_DATA"] = str(Path(tmp) / "data")
        subprocess.run([sys.executable, "-m", "fishbear", "train", f"hydra.run.dir={run}", "logger=none",
                        "trainer.max_epochs=1", "data.source.train=20", "data.source.valid=5", "data.source.test=5"],
                       check=True, capture_output=True, env=env)
        subprocess.run([sys.executable, "-m", "fishbear", "export", f"ckpt={run / 'checkpoints' / 'best.ckpt'}"],
                       check=True, capture_output=True, env=env)
        image = next((Path(tmp) / "data").rglob("*.jpg"))
        commands = {
            "fishbear predict (checkpoint, PyTorch)": [sys.executable, "-m", "fishbear.predict",
                                                       f"ckpt={run / 'checkpoints' / 'best.ckpt'}", f"input={image}",
                                                       f"output={Path(tmp) / 'a.csv'}", "overwrite=true"],
            "export/predict.py (onnxruntime)": [sys.executable, str(run / "export" / "predict.py"), str(image),
                                                "--output", str(Path(tmp) / "b.csv"), "--overwrite"],
        }
        out = {}
        for name, command in commands.items():
            walls = []
            for _ in range(runs):
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=env)
                walls.append(time.perf_counter() - started)
            out[name] = {"median_s": statistics.median(walls), "runs": walls}
        return out


def markdown(result: dict[str, Any]) -> str:
    lines = [f"CPU inference, {result['machine']}; {result['threads']} intra-op threads on each side; "
             f"{result['size']} px; torch {result['versions']['torch']}, onnxruntime {result['versions']['onnxruntime']}.",
             "", "| model | eager b=1 (ms/image) | ONNX b=1 (ms/image) | ratio | eager b=32 (images/s) | "
             "ONNX b=32 (images/s) | ratio | max abs diff |", "|---|---|---|---|---|---|---|---|"]
    for row in result["throughput"]:
        b1, b32 = row["batch1"], row["batch32"]
        lines.append(f"| {row['model']} | {b1['eager_ms_per_image']:.1f} | {b1['onnx_ms_per_image']:.1f} | "
                     f"{b1['speedup']:.1f}x | {b32['eager_images_per_s']:.1f} | {b32['onnx_images_per_s']:.1f} | "
                     f"{b32['speedup']:.1f}x | {max(b1['max_abs_difference'], b32['max_abs_difference']):.1g} |")
    lines += ["", "| fresh process to first prediction (one image) | median wall (s) | runs |", "|---|---|---|"]
    for name, entry in result["cold_start"].items():
        lines.append(f"| {name} | {entry['median_s']:.2f} | {', '.join(f'{w:.2f}' for w in entry['runs'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                        else os.cpu_count())
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cold", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    import onnxruntime

    torch.set_num_threads(args.threads)
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "threads": args.threads, "size": args.size,
              "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
              "throughput": [], "cold_start": {}}
    for model in args.models:
        result["throughput"].append(throughput(model, args.size, args.threads, args.rounds))
        print(json.dumps(result["throughput"][-1]), flush=True)
    if args.cold:
        result["cold_start"] = cold_start(args.cold, args.threads)
    text = markdown(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
