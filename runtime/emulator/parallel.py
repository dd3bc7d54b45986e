"""Whole batches on worker threads: how the emulator uses several cores.

Fine-grained parallelism (every convolution and LIF kernel split over threads) makes the threads
sleep and wake between kernels; on virtual machines a wake-up can cost milliseconds, and
torch's and numba's two thread pools then compete for the same cores (measured on a 2-core KVM
guest: 4.6x slower at batch 12 than at batch 10). So the emulator gives each worker thread whole
batches and runs every kernel inside it on that thread alone (torch intra-op threads 1, numba
threads 1 for the worker); the kernels release the GIL. The results do not depend on the number
of workers: every sum is an integer sum.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:            # not Linux
        return os.cpu_count() or 1


def numba_layer_is_threadsafe(kernels: object) -> bool:
    """True if numba's threading layer may be entered from several threads at once ("omp" or
    "tbb"; "workqueue" may not). Runs a tiny parallel kernel first: the layer is chosen then."""
    import numba
    import numpy as np

    from lsnn.runtime.emulator.terms import META_COLUMNS

    kernels.gather_lif([[], [], []], np.zeros((0, META_COLUMNS), np.int64), 4095, 0,  # type: ignore[attr-defined]
                       np.zeros(1, np.int32), 1, True, np.zeros((1, 1, 1), np.uint8), np.zeros((0, 0, 0), np.int32),
                       False, np.zeros((1, 1), np.int64), np.zeros(1, np.int64))
    return numba.threading_layer() in ("omp", "tbb")


@contextmanager
def torch_single_threaded() -> Iterator[None]:
    """torch's intra-op threads set to 1 for the block (each worker is one thread), then restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def worker_setup() -> None:
    """In a worker thread: numba kernels on this thread only (numba's setting is per thread)."""
    import numba

    numba.set_num_threads(1)
