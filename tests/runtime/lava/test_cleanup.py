"""Clean-up helpers: a killed tree or process group is gone (not merely signalled) on return."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from lsnn.runtime.lava.cleanup import descendants, group_members, kill_tree, remove_scratch, wait_group_gone

_TREE = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"


def _spawn_tree() -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _TREE], start_new_session=True)
    for _ in range(500):
        if descendants(proc.pid):
            break
        subprocess.run(["sleep", "0.01"])
    return proc


def test_kill_tree_returns_once_the_descendants_are_gone():
    proc = _spawn_tree()
    kids = descendants(proc.pid)
    assert kids
    kill_tree(proc.pid)
    assert all(not os.path.exists(f"/proc/{k}") or open(f"/proc/{k}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
               for k in kids)
    proc.kill()
    proc.wait()


def test_wait_group_gone_after_killpg():
    proc = _spawn_tree()
    assert len(group_members(proc.pid)) == 2
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wait_group_gone(proc.pid, wait_s=5.0)
    assert group_members(proc.pid) == []


def test_the_reaper_removes_its_worker_scratch_and_a_dead_callers_folder(tmp_path):
    folder = tmp_path / "lsnn-lava-abc"
    for name in ("scratch-123-x", "scratch-456-y"):
        (folder / name).mkdir(parents=True)
        (folder / name / "spikes_0.u8").write_bytes(b"\0" * 16)
    (folder / "model.net").write_bytes(b"net")
    remove_scratch(folder, 123, os.getpid())                 # the caller lives: its folder stays
    assert sorted(p.name for p in folder.iterdir()) == ["model.net", "scratch-456-y"]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    remove_scratch(folder, 456, dead.pid)                    # the caller is gone: so is the folder
    assert not folder.exists()
