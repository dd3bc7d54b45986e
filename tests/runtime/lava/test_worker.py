"""The Lava worker leaves nothing behind: killing its caller mid-run (Ctrl-C or SIGKILL) ends
the worker and every Lava process, and removes the shared memory they created."""
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from lsnn.errors import LsnnError
from lsnn.runtime.lava import protocol
from lsnn.runtime.lava.cleanup import shm_entries
from lsnn.runtime.lava.client import run_lava, run_worker
from tests.factories.lava_env import worker_processes
from tests.factories.runtime import chain_graph, random_input

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.lava

_CALLER = """
import sys
from lsnn.runtime.lava.client import run_lava
from tests.factories.runtime import chain_graph, random_input
g = chain_graph(T=3)
def progress(k):
    with open(sys.argv[1], "a") as f:
        f.write(f"{k}\\n")
run_lava(g, random_input(g, 3000, 1), progress=progress, chunk_samples=1)
"""


def _wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killing_the_caller_leaves_no_process_and_no_shared_memory(tmp_path, sig):
    shm_before, workers_before, folders_before = shm_entries(), set(worker_processes()), _request_folders()
    marker = tmp_path / "progress"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT)
    caller = subprocess.Popen([sys.executable, "-c", _CALLER, str(marker)], cwd=tmp_path, env=env,
                              stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: marker.exists() and marker.read_text().count("\n") >= 2, 240), \
            "the Lava run did not start"
        assert set(worker_processes()) - workers_before, "no worker process while the run goes on"
        os.kill(caller.pid, sig)
        try:   # once (2026-12-02, fresh-clone CI on a 2-core AMD EPYC) SIGINT's caller outlived 60 s
            caller.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the caller still ran 120 s after {sig.name} (progress lines: "
                        f"{marker.read_text().count(chr(10))})")
    finally:
        if caller.poll() is None:
            caller.kill()
    assert _wait_for(lambda: not set(worker_processes()) - workers_before, 60), "a worker process survived"
    assert _wait_for(lambda: not shm_entries() - shm_before, 30), f"left in /dev/shm: {shm_entries() - shm_before}"
    assert _wait_for(lambda: not _request_folders() - folders_before, 30), \
        f"left in {tempfile.gettempdir()}: {_request_folders() - folders_before}"


def _request_folders() -> set[str]:
    """The Lava request folders in the temporary directory (the caller's TemporaryDirectory)."""
    return {p.name for p in Path(tempfile.gettempdir()).glob("lsnn-lava-*")}


def test_a_caller_that_stops_reading_ends_the_run_cleanly(tmp_path):
    """The worker may learn that its caller is gone from a progress line it cannot write before
    its stdin watchdog wakes; that path too must kill Lava's processes and remove their memory."""
    from lsnn.compiler.backend.netx import write_net
    from lsnn.runtime.lava.client import _worker_env, require_lava_python

    g = chain_graph(T=3)
    write_net(g, tmp_path / protocol.NET)
    np.savez(tmp_path / protocol.INPUTS, x_int=random_input(g, 3000, 1))
    protocol.write_request(tmp_path, "run", chunk_samples=1)
    shm_before, workers_before = shm_entries(), set(worker_processes())
    proc = subprocess.Popen([require_lava_python(), "-m", "lsnn.runtime.lava.worker", str(tmp_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=_worker_env(), start_new_session=True)
    try:
        assert proc.stdout.readline().startswith(b"progress"), "the Lava run did not start"
        proc.stdout.close()                   # stdin stays open: only the broken pipe tells
        assert proc.wait(timeout=120) == 3
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdin.close()
    assert _wait_for(lambda: not set(worker_processes()) - workers_before, 60), "a worker process survived"
    assert _wait_for(lambda: not shm_entries() - shm_before, 30), f"left in /dev/shm: {shm_entries() - shm_before}"
    assert _wait_for(lambda: not list(tmp_path.glob("scratch-*")), 30), "the worker's recordings were left behind"
    assert (tmp_path / protocol.NET).is_file()            # the caller is alive: its folder stays


def test_timeout_stops_the_worker():
    g = chain_graph(T=3)
    shm_before, workers_before = shm_entries(), set(worker_processes())
    with pytest.raises(LsnnError, match="exceeded its time limit"):
        run_lava(g, random_input(g, 3000, 1), timeout=3)
    assert not set(worker_processes()) - workers_before
    assert not shm_entries() - shm_before


def test_a_request_of_another_version_is_refused(tmp_path):
    protocol.write_request(tmp_path, "probe")
    req = tmp_path / protocol.REQUEST
    req.write_text(req.read_text().replace(f'"version": {protocol.VERSION}', '"version": 99'))
    run_worker(tmp_path)
    with pytest.raises(LsnnError, match="not a version-1 lsnn.lava_worker request"):
        protocol.read_result(tmp_path, None)


def test_worker_errors_come_back_as_lsnn_errors(tmp_path):
    g = chain_graph(T=2)
    x = random_input(g, 2, 0)
    from lsnn.compiler.backend.netx import write_net

    write_net(g, tmp_path / protocol.NET)
    np.savez(tmp_path / protocol.INPUTS, x_int=x[:, :1])           # wrong input shape
    protocol.write_request(tmp_path, "run")
    run_worker(tmp_path)
    with pytest.raises(LsnnError):
        protocol.read_result(tmp_path, None)


def test_a_stalled_run_is_stopped_retried_once_and_leaves_nothing(monkeypatch):
    from lsnn.errors import LavaStalledError

    monkeypatch.setenv("LSNN_LAVA_STALL_S", "0.2")       # shorter than Lava's start-up: every attempt stalls
    g = chain_graph(T=3)
    shm_before, workers_before = shm_entries(), set(worker_processes())
    starts = []
    real = run_worker
    import lsnn.runtime.lava.client as client

    monkeypatch.setattr(client, "run_worker", lambda *a, **k: (starts.append(1), real(*a, **k))[1])
    with pytest.raises(LavaStalledError, match="no progress for 0.2 s"):
        run_lava(g, random_input(g, 4, 0))
    assert len(starts) == 2
    assert not set(worker_processes()) - workers_before
    assert not shm_entries() - shm_before


def test_a_run_that_stalled_once_succeeds_on_the_retry(monkeypatch):
    import lsnn.runtime.lava.client as client
    from lsnn.errors import LavaStalledError

    calls = []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise LavaStalledError("simulated hang")
        return run_worker(*a, **k)

    monkeypatch.setattr(client, "run_worker", flaky)
    g = chain_graph(T=3)
    res = run_lava(g, random_input(g, 2, 0))
    assert len(calls) == 2 and res.predictions.shape == (2,)
