"""Run a compiled net on Lava, inside the Lava worker: Loihi2SimCfg(select_tag="fixed_pt") (or
Loihi 2 with --hw). The core never imports this module; it calls `client.run_lava`.

`run_lava(graph, x_int)` streams the samples through the pipeline in one run of
`N*T + max depth` steps (resets by LIFReset, no Var.set), reads the probes back from their
memmap files, and always stops Lava (try/finally, also on Ctrl-C: Lava's worker processes are
forked with a SIGINT handler that only records the signal, so a Ctrl-C to the whole process
group interrupts the parent alone, which then stops the workers cleanly). It reports Lava's start-up
cost (compile + process start + first step) and the steady per-step cost separately.

Lava is imported here only (importing it sets multiprocessing's start method to fork: keep
torch out of the processes this starts). No torch here.
"""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
import time
from typing import Callable, Optional

import numpy as np

from lsnn.compiler.ir import Graph
from lsnn.errors import LavaUnavailableError
from lsnn.runtime.lava.protocol import LavaResult
from lsnn.runtime.results import PipelineTrace


def import_lava() -> None:
    """Import Lava's runtime safely: on import it calls multiprocessing.set_start_method('fork'),
    which raises if anything (e.g. a tqdm lock) already fixed the start method. A context already
    fixed to 'fork' is released first (Lava fixes it again); any other method is an error."""
    import multiprocessing as mp
    import sys

    if "lava.magma.runtime.message_infrastructure.multiprocessing" not in sys.modules:
        method = mp.get_start_method(allow_none=True)
        if method not in (None, "fork"):
            raise LavaUnavailableError(f"Lava needs the 'fork' multiprocessing start method; this process "
                                       f"already uses '{method}'")
        if method is not None:
            mp.set_start_method(None, force=True)
    import lava.magma.core.process.process  # noqa: F401  (sets the start method)


@contextlib.contextmanager
def _workers_survive_sigint():
    """While Lava forks its worker processes, SIGINT only records itself (the workers inherit this
    handler, so a Ctrl-C sent to the whole process group does not kill them mid-protocol, which
    leaves the parent waiting forever); afterwards the parent's own handler is back and a deferred
    Ctrl-C is raised as KeyboardInterrupt, so the caller's `finally: stop()` shuts Lava down."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    deferred: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: deferred.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if deferred:
        raise KeyboardInterrupt


def hw_available() -> bool:
    """True if lava-loihi (Intel's Loihi 2 backend) is importable."""
    try:
        import_lava()
        from lava.utils import loihi
    except (ImportError, LavaUnavailableError):
        return False
    try:
        return bool(loihi.is_installed())
    except Exception:                                           # pragma: no cover - defensive
        return False


def run_config(hw: bool, model_map: dict):
    """Loihi2SimCfg(fixed_pt), or Loihi2HwCfg when lava-loihi is installed (else a clear error)."""
    if hw:
        if not hw_available():
            raise LavaUnavailableError("--hw needs lava-loihi (Intel's Loihi 2 backend, available to INRC "
                                       "members), which is not installed here; use --sim")
        from lava.magma.core.run_configs import Loihi2HwCfg  # pragma: no cover - needs hardware
        return Loihi2HwCfg(select_tag="fixed_pt", exception_proc_model_map=model_map)  # pragma: no cover
    from lava.magma.core.run_configs import Loihi2SimCfg
    return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=model_map)


def run_lava(graph: Graph, x_int: np.ndarray, *, record_spikes: bool = True, v_every_step: bool = False,
             hw: bool = False, progress: Optional[Callable[[int], None]] = None,
             chunk_samples: int = 4, scratch_dir: Optional[str] = None) -> LavaResult:
    """Stream the encoded samples x_int [N, C, H, W] through `graph` on Lava. Its recordings go
    to a temporary folder (inside `scratch_dir` if given).

    The run is split into chunks of `chunk_samples * T` steps (after a first single step that
    carries the start-up cost) so that `progress(samples_done)` can be reported.
    """
    import_lava()
    if hw and not hw_available():
        raise LavaUnavailableError("--hw needs lava-loihi (Intel's Loihi 2 backend, available to INRC "
                                   "members), which is not installed here; use --sim")
    from lava.magma.core.run_conditions import RunSteps

    from lsnn.runtime.lava.build import build_network

    # inside the request folder when the worker runs it: the reaper removes it if the run is killed
    prefix = f"scratch-{os.getpid()}-" if scratch_dir else "lsnn-lava-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=scratch_dir) as tmp:
        t0 = time.perf_counter()
        net = build_network(graph, x_int, tmp, record_spikes=record_spikes, v_every_step=v_every_step)
        cfg = run_config(hw, net.model_map)
        t1 = time.perf_counter()
        steps = net.num_steps
        T = graph.T
        done = 0
        first_s = 0.0
        rest_s = 0.0
        try:
            with _workers_survive_sigint():
                net.root.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            done = 1
            t2 = time.perf_counter()
            first_s = t2 - t1
            chunk = max(1, chunk_samples * T)
            reported = 0
            while done < steps:
                k = min(chunk, steps - done)
                net.root.run(condition=RunSteps(num_steps=k), run_cfg=cfg)
                done += k
                if progress is not None:
                    finished = min(net.num_samples, max(0, (done - T - net.timing.latency) // T + 1))
                    if finished > reported:
                        progress(finished - reported)
                        reported = finished
            rest_s = time.perf_counter() - t2
        finally:
            net.root.stop()
        per_step = rest_s / (steps - 1) if steps > 1 else first_s
        startup = max(0.0, first_s - per_step)
        result = _read_back(net)
    return LavaResult(predictions=result[0], window_v=result[1], trace=result[2], num_samples=net.num_samples,
                      num_steps=steps, num_processes=net.process_count, build_s=t1 - t0, startup_s=startup,
                      per_step_s=per_step, run_s=first_s + rest_s, backend="loihi2-hw" if hw else "loihi2-sim-fixed_pt")


def _read_back(net) -> tuple[np.ndarray, np.ndarray, Optional[PipelineTrace]]:
    g = net.graph
    steps = net.num_steps
    spikes = {}
    for p in g.populations:
        path = net.spike_files.get(p.name)
        if path is None:
            continue
        c, h, w = p.shape
        mm = np.memmap(path, dtype=np.uint8, mode="r", shape=(steps, p.size))
        spikes[p.name] = np.array(mm).reshape(steps, w, h, c).transpose(0, 3, 2, 1).copy()
        del mm
    ro = g.population(g.readout)
    k = ro.size
    tm = net.timing
    if net.v_file is not None:
        mm = np.memmap(net.v_file, dtype=np.int32, mode="r", shape=(net.v_rows, k))
        v = np.array(mm)
        del mm
    else:
        v = np.zeros((0, k), np.int32)
    if net.v_every_step:
        rows = [i * g.T + g.T + tm.latency - 1 for i in range(net.num_samples)]
        window_v = v[rows]
        trace_v = v
    else:
        window_v = v
        trace_v = None
    preds = g.predictions(window_v)                       # the host's sum of readout parts, argmax
    trace = None
    if spikes:
        trace = PipelineTrace(spikes=spikes, readout_v=trace_v, num_steps=steps, num_samples=net.num_samples,
                              timing=tm)
    return preds, window_v, trace
