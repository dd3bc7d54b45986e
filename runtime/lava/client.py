"""Run Lava from the core's process through the worker (`worker`), never in it.

`run_lava(graph, x_int)` writes the net and the encoded inputs to a request folder, starts
`python -m lsnn.runtime.lava.worker FOLDER` with the Lava interpreter (`lava_python()`), relays
its progress lines, and reads its result back. Whatever ends the call (success, an error, a
timeout, Ctrl-C), the worker and every process it started are gone afterwards and the
shared-memory files they created are removed. When this interpreter can import Lava itself,
the same worker path runs with it (one code path).
"""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from lsnn.compiler.backend.netx import write_net
from lsnn.compiler.ir import Graph
from lsnn.errors import LavaStalledError, LavaUnavailableError, LsnnError
from lsnn.runtime.lava import protocol
from lsnn.runtime.lava.cleanup import kill_tree, remove_new_shm, shm_entries, wait_group_gone
from lsnn.runtime.lava.protocol import LavaResult
from lsnn.runtime.netgraph import check_input_int, check_runnable

ENV_VAR = "LSNN_LAVA_PYTHON"
STOP_GRACE_S = 20.0           # how long a stopped worker may take to clean up before SIGKILL
NO_LAVA = ("Lava checks are off: no CPython 3.10 environment with lava-nc was found (run scripts/setup.sh "
           f"where a CPython 3.10 exists, or set {ENV_VAR} to its python)")


def _checkout_venv() -> Path:
    """`.venv-lava/bin/python` of the checkout this lsnn runs from (editable installs)."""
    import lsnn

    return Path(lsnn.__file__).resolve().parents[1] / ".venv-lava" / "bin" / "python"


def lava_python() -> Optional[str]:
    """The interpreter that runs the worker: $LSNN_LAVA_PYTHON, else the checkout's `.venv-lava`,
    else this interpreter if it imports Lava; None if there is none."""
    env = os.environ.get(ENV_VAR)
    if env:
        if not (Path(env).is_file() and os.access(env, os.X_OK)):
            raise LavaUnavailableError(f"{ENV_VAR}={env}: no such executable")
        return env
    venv = _checkout_venv()
    if venv.is_file():
        return str(venv)
    if importlib.util.find_spec("lava") is not None:
        return sys.executable
    return None


def require_lava_python() -> str:
    """`lava_python()` or LavaUnavailableError saying how to get one."""
    py = lava_python()
    if py is None:
        raise LavaUnavailableError(NO_LAVA)
    return py


def _worker_env() -> dict[str, str]:
    """This environment without the variables that would point the 3.10 interpreter at ours."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}


STALL_ENV = "LSNN_LAVA_STALL_S"
STALL_DEFAULT_S = 600.0     # no progress line for this long: Lava's runtime is taken as hung
RETRIES_AFTER_STALL = 1


def stall_limit() -> float:
    """Seconds without a progress line after which a Lava run counts as hung ($LSNN_LAVA_STALL_S)."""
    try:
        return float(os.environ.get(STALL_ENV, STALL_DEFAULT_S))
    except ValueError:
        raise LsnnError(f"${STALL_ENV} must be a number of seconds, got {os.environ[STALL_ENV]!r}") from None


def _relay(stream: Any, progress: Optional[Callable[[int], None]], errors: list[BaseException],
           activity: list[float]) -> None:
    for line in stream:
        activity[0] = time.monotonic()
        parts = line.split()
        if progress is not None and len(parts) == 2 and parts[0] == protocol.PROGRESS:
            try:
                progress(int(parts[1]))
            except BaseException as exc:      # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)
                return


def _waiter_thread(proc: subprocess.Popen) -> threading.Thread:
    """A thread that waits for `proc`; only it calls `proc.wait`. Ctrl-C landing inside a
    `Popen.wait(timeout)` of the main thread can leave Popen's internal lock held (CPython: 34 of
    20,000 interrupts in a stress test), and every later wait on it then blocks for ever."""
    t = threading.Thread(target=proc.wait, daemon=True, name="lsnn-lava-wait")
    t.start()
    return t


def _stop(proc: subprocess.Popen, waiter: Optional[threading.Thread], before: set[str]) -> None:
    """Close the worker's stdin (its watchdog ends the run), then make sure: SIGKILL the worker's
    process group and every descendant, remove the shared memory they left. Every wait is bounded."""
    if waiter is None:                 # interrupted before its waiter started
        waiter = _waiter_thread(proc)
    try:
        proc.stdin.close()
    except OSError:
        pass
    waiter.join(STOP_GRACE_S)
    kill_tree(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    waiter.join(STOP_GRACE_S)          # SIGKILLed: the waiter reaps it at once
    wait_group_gone(proc.pid)          # SIGKILL is asynchronous: return only once none of them runs
    remove_new_shm(before)


def _supervise(waiter: threading.Thread, errors: list[BaseException], activity: list[float],
               timeout: Optional[float]) -> None:
    """Return when the worker has ended; raise on a relay error, the time limit or a stall."""
    deadline = None if timeout is None else time.monotonic() + timeout
    stall = stall_limit()
    while waiter.is_alive():
        waiter.join(0.2)
        if errors:
            raise errors[0]
        if deadline is not None and time.monotonic() > deadline:
            raise LsnnError(f"the Lava run exceeded its time limit of {timeout:g} s")
        if time.monotonic() - activity[0] > stall:
            raise LavaStalledError(f"the Lava worker reported no progress for {stall:g} s "
                                   f"(${STALL_ENV} sets the limit)")


def run_worker(folder: Path, progress: Optional[Callable[[int], None]] = None,
               timeout: Optional[float] = None) -> None:
    """Serve the request in `folder` with the Lava worker; returns when its result is written."""
    py = require_lava_python()
    before = shm_entries()
    errors: list[BaseException] = []
    with open(folder / "worker.log", "w") as log:
        proc = subprocess.Popen([py, "-m", "lsnn.runtime.lava.worker", str(folder)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=log, text=True, env=_worker_env(),
                                start_new_session=True)
        waiter = None
        try:
            waiter = _waiter_thread(proc)
            activity = [time.monotonic()]
            relay = threading.Thread(target=_relay, args=(proc.stdout, progress, errors, activity), daemon=True)
            relay.start()
            _supervise(waiter, errors, activity, timeout)
        finally:
            _stop(proc, waiter, before)
    relay.join(timeout=5)
    if errors:
        raise errors[0]
    if not (folder / protocol.RESULT).is_file():
        tail = (folder / "worker.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise LsnnError(f"the Lava worker ended with status {proc.returncode} and no result: " + " | ".join(tail))


def run_lava(graph: Graph, x_int: np.ndarray, *, record_spikes: bool = True, v_every_step: bool = False,
             hw: bool = False, progress: Optional[Callable[[int], None]] = None, chunk_samples: int = 4,
             timeout: Optional[float] = None) -> LavaResult:
    """Stream the encoded samples x_int [N, C, H, W] through `graph` on Lava (in the worker);
    `progress(k)` is called as k more samples finish. A run whose worker reports no progress for
    `stall_limit()` seconds is stopped (nothing left behind) and started once more."""
    timing = check_runnable(graph)
    x_int = check_input_int(graph, x_int)
    with tempfile.TemporaryDirectory(prefix="lsnn-lava-") as tmp:
        folder = Path(tmp)
        write_net(graph, folder / protocol.NET)
        np.savez(folder / protocol.INPUTS, x_int=np.ascontiguousarray(x_int, dtype=np.int32))
        protocol.write_request(folder, "run", record_spikes=record_spikes, v_every_step=v_every_step, hw=hw,
                               chunk_samples=int(chunk_samples))
        for attempt in range(RETRIES_AFTER_STALL + 1):
            try:
                run_worker(folder, progress, timeout)
                break
            except LavaStalledError:      # Lava's runtime hangs now and then under load: once more
                if attempt == RETRIES_AFTER_STALL:
                    raise
        return protocol.read_result(folder, timing)


def probe() -> dict[str, Any]:
    """What the Lava environment has: {"python", "lava_nc", "hw"} (LavaUnavailableError if none)."""
    import json

    with tempfile.TemporaryDirectory(prefix="lsnn-lava-") as tmp:
        folder = Path(tmp)
        protocol.write_request(folder, "probe")
        run_worker(folder)
        meta = json.loads((folder / protocol.RESULT).read_text())
    if not meta.get("ok"):
        raise LsnnError(f"the Lava worker failed: {meta.get('error')}")
    return meta


def hw_available() -> bool:
    """True if the Lava environment has lava-loihi (Intel's Loihi 2 backend)."""
    try:
        return bool(probe()["hw"])
    except LavaUnavailableError:
        return False
