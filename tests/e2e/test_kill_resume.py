"""`lsnn search` killed with SIGKILL (once in the search stage, once in retraining) and resumed
with --resume ends exactly where an uninterrupted run with the same seed ends: the same
genotype.json bytes, the same weights in model.pt, the same metrics. On digits, and as the long
real-data runs go: CIFAR-10 from its python archive (extracted into a cache on the first run),
with crop + flip augmentation."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["search", "--no-deploy", "--search-epochs", "3", "--retrain-epochs", "4", "-C", "4",
        "--retrain-channels", "4", "--num-threads", "1", "--seed", "3"]


def _lsnn(out: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "lsnn.cli", *ARGS, "--out", str(out), *extra], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _cifar_args(tmp: Path) -> tuple[list[str], dict]:
    """A CIFAR-10 python archive of 100 train and 20 test images (the release's format) and the
    options of a real-data run on it."""
    import tarfile

    from tests.factories.datasets import write_c10_batches

    write_c10_batches(tmp / "src" / "cifar-10-batches-py", n=20)
    archive = tmp / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return (["--dataset", "cifar10", "--data-dir", str(archive), "--augment", "crop_flip", "--cells", "2",
             "--reductions", "1", "-T", "2", "--batch-size", "10", "--retrain-batch-size", "10"],
            {"LSNN_DATA_CACHE": str(tmp / "cache")})


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _kill_when(proc: subprocess.Popen, cond, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"the run ended before the kill point: {proc.stderr.read()[-500:]}"
        assert time.monotonic() < end, "the kill point was never reached"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]


@pytest.mark.parametrize("dataset", ["digits", "cifar10"])
def test_sigkill_in_search_and_in_retraining_then_resume_matches_an_uninterrupted_run(tmp_path, dataset):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    args, env = _cifar_args(tmp_path) if dataset == "cifar10" else ([], {})
    _finish(_lsnn(ref, *args, env=env))
    _kill_when(_lsnn(cut, *args, env=env), lambda: _lines(cut / "search_log.jsonl") >= 1)           # mid-search
    assert not (cut / "genotype.json").exists()
    _kill_when(_lsnn(cut, *args, "--resume", env=env), lambda: _lines(cut / "retrain_log.jsonl") >= 2)  # retraining
    assert not (cut / "model.pt").exists()
    _finish(_lsnn(cut, *args, "--resume", env=env))
    assert (cut / "genotype.json").read_bytes() == (ref / "genotype.json").read_bytes()
    flat_a = dict(_walk(torch.load(ref / "model.pt", weights_only=True)))
    flat_b = dict(_walk(torch.load(cut / "model.pt", weights_only=True)))
    assert flat_a.keys() == flat_b.keys() and flat_a
    assert all(torch.equal(flat_a[k], flat_b[k]) if torch.is_tensor(flat_a[k]) else flat_a[k] == flat_b[k]
               for k in flat_a if "seconds" not in k and "wall" not in k and "time" not in k)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (ref, cut))
    assert {k: v for k, v in sa.items() if not k.endswith("_seconds") and k != "model"} == \
        {k: v for k, v in sb.items() if not k.endswith("_seconds") and k != "model"}


def _walk(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{prefix}/{i}")
    else:
        yield prefix, obj
