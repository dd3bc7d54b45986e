"""Lava soak: stream many samples through Lava (in the worker, in chunks) while sampling the
memory of the worker's processes and /dev/shm every second; then check that nothing leaked
(processes, shared memory), that Lava agreed with the emulator on every sample, and that a
Ctrl-C in the middle of a second run leaves nothing behind either.

    python benchmarks/soak_lava.py --samples 2000 --out benchmarks/results/lava_soak.json

The model is the benchmark's 3-layer digits net (`tests/factories/runtime.digits_graph`) on the
digits test split, cycled to --samples.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_CALLER = """
import sys, numpy as np
from lsnn.runtime.lava.client import run_lava
from tests.factories.runtime import digits_graph, random_input
g = digits_graph(T=4)
def progress(k):
    print(k, flush=True)
run_lava(g, random_input(g, 5000, 1), progress=progress, chunk_samples=8)
"""


def worker_pids() -> list[int]:
    """Pids of the Lava worker and the processes it forked (they keep its command line)."""
    from tests.factories.lava_env import worker_processes

    return worker_processes()


def rss_bytes(pids: list[int]) -> int:
    """Summed resident memory of `pids` (shared pages counted once per process: an upper bound)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
    return total


def shm_usage() -> tuple[int, int]:
    """(entries, bytes) of multiprocessing's files in /dev/shm."""
    from lsnn.runtime.lava.cleanup import SHM, shm_entries

    names = shm_entries()
    size = 0
    for n in names:
        try:
            size += (SHM / n).stat().st_size
        except OSError:
            pass
    return len(names), size


class Sampler(threading.Thread):
    """Every `every` seconds: (t, worker processes, their RSS, /dev/shm entries and bytes)."""

    def __init__(self, every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.every, self.rows, self.stop = every, [], threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.is_set():
            pids = worker_pids()
            n, b = shm_usage()
            self.rows.append([round(time.monotonic() - t0, 1), len(pids), rss_bytes(pids), n, b])
            self.stop.wait(self.every)


def soak(samples: int, chunk: int) -> dict:
    """Stream `samples` digits samples through Lava; memory timeline, leaks, agreement."""
    from lsnn.data.datasets import load_dataset
    from lsnn.runtime.emulator import Emulator
    from lsnn.runtime.lava.client import run_lava
    from lsnn.runtime.netgraph import encode_input
    from tests.factories.runtime import digits_graph

    g = digits_graph(T=4, fit_readout=True)
    x = encode_input(g, load_dataset("digits", None, "test").x)
    x = np.concatenate([x] * (samples // len(x) + 1))[:samples]
    before_workers, before_shm = set(worker_pids()), shm_usage()
    sampler = Sampler()
    sampler.start()
    t0 = time.monotonic()
    res = run_lava(g, x, record_spikes=False, chunk_samples=chunk)
    seconds = time.monotonic() - t0
    time.sleep(2.0)
    sampler.stop.set()
    sampler.join()
    ref = Emulator(g).run(x)
    rows = sampler.rows
    return {"samples": samples, "chunk_samples": chunk, "seconds": round(seconds, 1),
            "samples_per_s": samples / seconds, "lava_processes": res.num_processes,
            "predictions_identical_to_emulator": bool(np.array_equal(res.predictions, ref.predictions)),
            "readout_identical_to_emulator": bool(np.array_equal(res.window_v, ref.readout_v)),
            "worker_rss_mb": {"peak": max(r[2] for r in rows) / 2**20,
                              "first_quarter_max": max(r[2] for r in rows[: max(1, len(rows) // 4)]) / 2**20,
                              "last_quarter_max": max(r[2] for r in rows[3 * len(rows) // 4:]) / 2**20},
            "shm_during": {"max_entries": max(r[3] for r in rows), "max_bytes": max(r[4] for r in rows)},
            "shm_before": before_shm, "shm_after": shm_usage(),
            "leaked_workers": sorted(set(worker_pids()) - before_workers),
            "timeline": rows[:: max(1, len(rows) // 200)],
            "timeline_columns": ["t_s", "worker_processes", "worker_rss_bytes", "shm_entries", "shm_bytes"]}


def ctrl_c(after: int) -> dict:
    """A second run in a child, SIGINT once `after` samples are done: what is left behind."""
    before_workers, before_shm = set(worker_pids()), shm_usage()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-c", _CALLER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, env=env)
    done = 0
    for line in p.stdout:               # each line: how many more samples finished
        done += int(line)
        if done >= after:
            break
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=120)
    seconds = time.monotonic() - t0
    time.sleep(2.0)
    return {"interrupted_after_samples": done, "exit_code": rc, "seconds_to_exit": round(seconds, 2),
            "leaked_workers": sorted(set(worker_pids()) - before_workers),
            "shm_before": before_shm, "shm_after": shm_usage()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--chunk", type=int, default=50)
    ap.add_argument("--interrupt-after", type=int, default=40)
    ap.add_argument("--out", default="benchmarks/results/lava_soak.json")
    a = ap.parse_args()
    out = {"machine": platform.processor() or platform.machine(), "soak": soak(a.samples, a.chunk),
           "ctrl_c": ctrl_c(a.interrupt_after)}
    try:
        out["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line)
    except (OSError, StopIteration):
        pass
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    s, c = out["soak"], out["ctrl_c"]
    print(f"soak: {s['samples']} samples in {s['seconds']} s ({s['samples_per_s']:.2f}/s), identical to the "
          f"emulator: {s['predictions_identical_to_emulator']}, worker RSS peak {s['worker_rss_mb']['peak']:.0f} MB "
          f"(first quarter {s['worker_rss_mb']['first_quarter_max']:.0f}, last {s['worker_rss_mb']['last_quarter_max']:.0f}), "
          f"/dev/shm {s['shm_before']} -> {s['shm_after']}, leaked workers {s['leaked_workers']}")
    print(f"ctrl-c after {c['interrupted_after_samples']} samples: exit {c['exit_code']} after "
          f"{c['seconds_to_exit']} s, /dev/shm "
          f"{c['shm_before']} -> {c['shm_after']}, leaked workers {c['leaked_workers']}")


if __name__ == "__main__":
    main()
