"""Leave nothing behind after a Lava run: the processes a worker started (found through /proc)
and the multiprocessing shared-memory files that appeared in /dev/shm while it ran (Linux)."""
from __future__ import annotations

import os
import signal
from pathlib import Path

SHM = Path("/dev/shm")
SHM_PREFIXES = ("psm_", "sem.mp-", "mp-")     # multiprocessing's shared memory and semaphores


def shm_entries() -> set[str]:
    """Names in /dev/shm that multiprocessing creates (empty where there is no /dev/shm)."""
    try:
        return {n for n in os.listdir(SHM) if n.startswith(SHM_PREFIXES)}
    except OSError:
        return set()


def remove_new_shm(before: set[str]) -> list[str]:
    """Remove the multiprocessing entries of /dev/shm that were not there `before`; returns them."""
    gone = sorted(shm_entries() - before)
    for name in gone:
        try:
            (SHM / name).unlink()
        except OSError:
            pass
    return gone


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL every descendant of `pid`."""
    for c in descendants(pid):
        try:
            os.kill(c, signal.SIGKILL)
        except OSError:
            pass
