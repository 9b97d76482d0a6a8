"""fishbear serve under load, on the loopback: requests per second and latency percentiles at
concurrency 1 and 8, PyTorch and ONNX Runtime backends, with and without batching.

One model for every configuration: MobileNetV2 at 224 px (the bears recipe's network) trained for
an epoch on a few shapes, and its ``fishbear export``. Each configuration starts its own server
(``python -m fishbear.serve``), is warmed up, then takes ``--requests`` requests (or ``--seconds``,
whichever ends first) from ``concurrency`` client threads, each posting real JPEGs of the test
split; every answer is checked against ``fishbear predict``'s for its own file (a mixed-up answer
fails the run). Threads: the server's inference worker gets all cores.

    python benchmarks/serve.py [--requests 200] [--seconds 30] [--json OUT] [--markdown OUT]
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fishbear.engine.deploy.serve_client import ServedModel


def model(tmp: Path) -> tuple[Path, Path, list[Path]]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "FISHBEAR_DATA": str(tmp / "data")}
    run = tmp / "run"
    subprocess.run([sys.executable, "-m", "fishbear", "train", "model=mobilenet_v2", "data.image_size=224",
                    "data.source.image_size=224", "data.source.train=10", "data.source.valid=3", "data.source.test=8",
                    "trainer.max_epochs=1", f"hydra.run.dir={run}", "logger=none"], check=True, capture_output=True, env=env)
    ckpt = run / "checkpoints" / "best.ckpt"
    subprocess.run([sys.executable, "-m", "fishbear", "export", f"ckpt={ckpt}", f"out={tmp / 'export'}"], check=True,
                   capture_output=True, env=env)
    files = sorted((tmp / "data").rglob("test/*/*.jpg"))
    return ckpt, tmp / "export", files


def load(server: ServedModel, files: list[Path], expected: dict[str, str], concurrency: int, requests: int,
         seconds: float) -> dict[str, Any]:
    for path in files[:4]:  # warm up
        server.post_file(path)
    latencies: list[float] = []
    wrong = 0
    started = time.perf_counter()

    def one(i: int) -> tuple[float, bool]:
        path = files[i % len(files)]
        t0 = time.perf_counter()
        status, answer = server.post_file(path)
        return time.perf_counter() - t0, status == 200 and answer.get("label") == expected[str(path)]

    with ThreadPoolExecutor(concurrency) as pool:
        futures = []
        for i in range(requests):
            if time.perf_counter() - started > seconds:
                break
            futures.append(pool.submit(one, i))
            while sum(not f.done() for f in futures) >= 2 * concurrency:
                time.sleep(0.001)
        for future in futures:
            latency, right = future.result()
            latencies.append(latency)
            wrong += not right
    wall = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "wall_s": wall, "rps": len(latencies) / wall,
            "p50_ms": 1000 * statistics.median(latencies), "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
            "wrong_answers": wrong}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, export, files = model(Path(tmp))
        from fishbear.engine.inference import Predictor

        expected = {str(p): a["label"] for p, a in Predictor.from_checkpoint(ckpt).predict_files(files)}
        for backend, path in (("PyTorch", ckpt), ("ONNX Runtime", export)):
            for batch in (1, 8):
                server = ServedModel(path, f"batch={batch}", threads=cores)
                try:
                    for concurrency in (1, 8):
                        found = load(server, files, expected, concurrency, args.requests, args.seconds)
                        rows.append({"backend": backend, "batch": batch, "concurrency": concurrency, **found})
                        print(json.dumps(rows[-1]), flush=True)
                finally:
                    server.stop()
    lines = [f"fishbear serve on the loopback, {platform.machine()} with {cores} cores, MobileNetV2 at 224 px; "
             f"{len({str(f) for f in files})} real JPEGs, every answer checked against fishbear predict's.", "",
             "| backend | batching | concurrency | requests | requests/s | p50 (ms) | p95 (ms) | wrong answers |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['backend']} | {'up to ' + str(r['batch']) if r['batch'] > 1 else 'none'} | {r['concurrency']} | "
              f"{r['requests']} | {r['rps']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['wrong_answers']} |"
              for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(text)
    if any(r["wrong_answers"] for r in rows):
        raise SystemExit("some answers were not their request's own")


if __name__ == "__main__":
    main()
