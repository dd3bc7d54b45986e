"""The Lava worker: `python -m lsnn.runtime.lava.worker FOLDER`, run by `client` under the
CPython 3.10 environment that has lava-nc. It reads the request in FOLDER (`protocol`), runs
Lava (`run.run_lava`) and writes the result there, so Lava's fork-at-import, its shared-memory
manager and its old pins never touch the caller's process.

The caller holds the write end of this process's stdin. When it closes it, or dies (even by
SIGKILL), stdin reaches EOF and a watchdog thread ends the run at once: it kills every process
this worker started (Lava's runtime and process models), removes the shared-memory files that
appeared in /dev/shm during the run, starts a reaper that kills the worker's whole process group
from outside and removes them once more, and exits with status 3.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Optional

from lsnn.runtime.lava.cleanup import kill_tree, remove_new_shm, shm_entries

BEFORE_FILE = "shm_before.txt"


class _Ending:
    """The one way this worker ends a run its caller abandoned: kill every process it started,
    remove the shared memory that appeared, start the reaper, exit 3. Two threads may find the
    caller gone at once (stdin at EOF, or a progress line that cannot be written); the lock makes
    the first one do it all while the other waits for the exit, so neither half-cleans."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.before: set[str] = set()
        self.folder = Path(".")
        self.caller = os.getppid()       # the client; if it is gone when the reaper ends, so is the folder

    def now(self) -> None:
        """Clean up and exit 3; never returns. The final clean-up runs in a reaper outside this
        process group (`cleanup.main`): it kills the group, this process included, so no thread
        of ours can create shared memory after the removal."""
        self.lock.acquire()
        kill_tree(os.getpid())
        remove_new_shm(self.before)
        try:
            subprocess.Popen([sys.executable, "-m", "lsnn.runtime.lava.cleanup", str(os.getpgrp()),
                              str(self.folder / BEFORE_FILE), str(self.caller)], start_new_session=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            pass
        os._exit(3)

    def wait_for_any(self) -> None:
        """Let an ending already under way finish (it exits the process) before this one returns."""
        self.lock.acquire()


_ENDING = _Ending()


def _watch_stdin() -> None:
    """Block until the caller closes stdin (or dies), then end everything."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    _ENDING.now()


def _progress(done: int) -> None:
    """Report progress to the caller; a caller that is gone ends the run here."""
    try:
        print(f"progress {done}", flush=True)
    except OSError:           # the pipe is broken: the caller died
        _ENDING.now()


def _probe(folder: Path) -> None:
    from lsnn.io import write_json
    from lsnn.runtime.lava import protocol
    from lsnn.runtime.lava.run import hw_available, import_lava

    import_lava()
    from importlib.metadata import version

    write_json(folder / protocol.RESULT, {"protocol": protocol.PROTOCOL, "version": protocol.VERSION, "ok": True,
                                          "python": sys.version.split()[0], "lava_nc": version("lava-nc"),
                                          "hw": hw_available()})


def _run(folder: Path, req: dict) -> None:
    import numpy as np

    from lsnn.compiler.backend.netx import read_net
    from lsnn.runtime.lava import protocol
    from lsnn.runtime.lava.run import run_lava

    graph = read_net(folder / protocol.NET)
    with np.load(folder / protocol.INPUTS, allow_pickle=False) as z:
        x_int = z["x_int"]
    res = run_lava(graph, x_int, record_spikes=bool(req.get("record_spikes", True)),
                   v_every_step=bool(req.get("v_every_step", False)), hw=bool(req.get("hw", False)),
                   progress=_progress, chunk_samples=int(req.get("chunk_samples", 4)), scratch_dir=str(folder))
    protocol.write_result(folder, res)


def main(argv: Optional[list[str]] = None) -> int:
    """Serve one request; 0 on success, 1 after writing an error result."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m lsnn.runtime.lava.worker REQUEST_FOLDER", file=sys.stderr)
        return 2
    folder = Path(args[0])
    _ENDING.before, _ENDING.folder = shm_entries(), folder
    try:
        (folder / BEFORE_FILE).write_text("\n".join(sorted(_ENDING.before)))
    except OSError:
        pass
    threading.Thread(target=_watch_stdin, daemon=True, name="lsnn-parent-watch").start()
    from lsnn.runtime.lava import protocol

    try:
        req = protocol.read_request(folder)
        if req["op"] == "probe":
            _probe(folder)
        else:
            _run(folder, req)
        return 0
    except BaseException as exc:      # noqa: BLE001 - every failure becomes an error result
        protocol.write_error(folder, exc, traceback.format_exc())
        return 1
    finally:
        _ENDING.wait_for_any()


if __name__ == "__main__":
    sys.exit(main())
