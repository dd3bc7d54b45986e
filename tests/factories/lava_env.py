"""Helpers for the tests that run Lava through the worker: find its processes."""
from __future__ import annotations

import os


def worker_processes() -> list[int]:
    """Pids of running Lava workers (`python -m lsnn.runtime.lava.worker ...`)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if b"lsnn.runtime.lava.worker" in cmd:
            out.append(int(entry))
    return out
