"""Process-level settings that make training faster on the host, applied once per process.

On CPU, glibc's malloc serves every activation tensor above 32 MB with a fresh ``mmap`` and hands
it back with ``munmap`` when freed, so each training step pays hundreds of page faults per layer
again (seen as system time close to user time). Keeping freed memory in the process, as
PyTorch's CPU tuning guide suggests with jemalloc or tcmalloc, removes that: measured here on
mobilenet_v2 at 224 px, batch 32, channels_last, 2 cores (two runs each way): a training step
1.84-1.99 s -> 1.50-1.51 s, system time 10.3-10.8 s -> 4.4-5.8 s, peak RSS 3.8-3.9 GB -> 4.2-4.3 GB.
Set ``FISHBEAR_MALLOC_TUNING=0`` to leave malloc alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied = False


def tune_host_allocator(keep_bytes: int = 1 << 30) -> bool:
    """Serve large blocks from the heap and keep up to ``keep_bytes`` of freed memory (glibc only).

    Returns whether the setting is in force; a no-op on other platforms and C libraries.
    """
    global _applied
    if _applied:
        return True
    if sys.platform != "linux" or os.environ.get("FISHBEAR_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: nothing to tune
        return False
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, int(keep_bytes)))
    log.debug("host allocator tuning %s", "applied" if _applied else "refused")
    return _applied


def cpu_training_workers(cores: int) -> int:
    """Loader workers when the model itself trains on the CPU: none below 8 cores, then one per 8.

    The model's OpenMP threads wait for each other at every operator, so a loader worker that
    takes a core for a moment stalls all of them. Measured on 2 cores (benchmarks/loader.py):
    the default run trained at 337 images/s with one worker beside two model threads, 442 with
    one worker and one thread, 455 with the loading done in the main process between steps;
    bears at 224 px with the convnet 61, 47 and 76 images/s. Loading in the main process is also
    what makes a run's augmentation reproducible from its seed alone.
    """
    return 0 if cores < 8 else cores // 8


def share_cores_with_loader(workers: int) -> int:
    """The model's threads on a CPU run: the cores the loader workers leave (at least one)."""
    import torch

    cores = available_cores()
    threads = max(1, cores - workers)
    if torch.get_num_threads() > threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def one_opencv_thread() -> None:
    """OpenCV's own thread pool (albumentations' resizes and warps) set to one thread, in the
    process that is about to fork loader workers: each worker then decodes and augments on one
    core, where it would start a thread per core (14 workers x 16 threads on a 16-core GPU
    machine). Set before the fork: changing it inside a forked worker deadlocks OpenCV."""
    try:
        import cv2
    except ImportError:  # pragma: no cover (albumentations brings OpenCV)
        return
    cv2.setNumThreads(1)
