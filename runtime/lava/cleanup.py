"""Leave nothing behind after a Lava run: the processes a worker started (found through /proc)
and the multiprocessing shared-memory files that appeared in /dev/shm while it ran (Linux).

`python -m lsnn.runtime.lava.cleanup PGID BEFORE_FILE` is the reaper a worker starts when its
caller is gone: from outside the worker's process group it kills the whole group (the worker
included, so nothing can create shared memory any more), waits until none of it runs, then
removes the /dev/shm entries not listed in BEFORE_FILE, the worker's scratch folders and, if the
caller is gone too, the request folder."""
from __future__ import annotations

import os
import signal
import time
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


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if len(fields) > 2 else None


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        fields = _stat(entry) if entry.isdigit() else None
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def group_members(pgid: int) -> list[int]:
    """Running (non-zombie) processes of process group `pgid` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        fields = _stat(entry) if entry.isdigit() else None
        if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry))
    return out


def wait_group_gone(pgid: int, wait_s: float = 5.0) -> bool:
    """Wait (up to `wait_s`) until no process of group `pgid` runs; True if none does."""
    deadline = time.monotonic() + wait_s
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a killed process lingers until it is reaped)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def kill_tree(pid: int, wait_s: float = 5.0) -> None:
    """SIGKILL every descendant of `pid`, again for any that appear meanwhile (a process may fork
    while its siblings die), until none runs or `wait_s` passes: a signal is delivered
    asynchronously, so without the wait a caller could still see them."""
    deadline = time.monotonic() + wait_s
    while True:
        victims = [c for c in descendants(pid) if _alive(c)]
        if not victims or time.monotonic() >= deadline:
            return
        for c in victims:
            try:
                os.kill(c, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)


def reap(pgid: int, before: set[str], wait_s: float = 10.0) -> None:
    """Kill process group `pgid`, wait until none of it runs, remove the shm entries not in `before`."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    wait_group_gone(pgid, wait_s)
    remove_new_shm(before)


def remove_scratch(folder: Path, pgid: int, caller: int | None) -> None:
    """Remove the killed worker's scratch folders (its recordings) from the request folder, and the
    request folder itself when the caller that made it is gone (a SIGKILLed caller cannot)."""
    import shutil

    for d in folder.glob(f"scratch-{pgid}-*"):
        shutil.rmtree(d, ignore_errors=True)
    if caller is not None and not _alive(caller) and folder.name.startswith("lsnn-lava-"):
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    """Entry of the reaper process: PGID BEFORE_FILE [CALLER_PID] (BEFORE_FILE: one shm name per
    line, in the request folder)."""
    pgid, before_file = int(argv[0]), Path(argv[1])
    try:
        before = set(before_file.read_text().split())
    except OSError:
        before = shm_entries()       # without the list, remove nothing that exists now
    reap(pgid, before)
    remove_scratch(before_file.parent, pgid, int(argv[2]) if len(argv) > 2 else None)
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
