"""The Lava worker's interface: files in one request folder, versioned.

In (written by the client): `request.json` {"protocol", "version", "op", options}, `model.net`
(the compiled net) and `inputs.npz` (x_int [N, C, H, W] int32). Out (written by the worker):
`result.json` {"protocol", "version", "ok", timings and sizes, or "error" and "error_type"} and
`result.npz` (predictions, window_v, readout_v and one `spikes/<population>` array per
population). Progress goes to the worker's stdout as lines `progress <samples done>`.
NumPy only: both sides import this, the client with the core's torch/numpy, the worker with
Lava's CPython 3.10 and numpy 1.x.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from lsnn.errors import LavaUnavailableError, LsnnError
from lsnn.io import atomic_path, write_json
from lsnn.runtime.netgraph import Timing
from lsnn.runtime.results import PipelineTrace

PROTOCOL = "lsnn.lava_worker"
VERSION = 1
OPS = ("run", "probe")
REQUEST, INPUTS, NET = "request.json", "inputs.npz", "model.net"
RESULT, ARRAYS = "result.json", "result.npz"
PROGRESS = "progress"
ERROR_TYPES = {"LavaUnavailableError": LavaUnavailableError, "LsnnError": LsnnError}


@dataclass
class LavaResult:
    """What the Lava run gave. `trace` holds every population's spikes at every Lava step (and the
    readout's v after every step if recorded so); `window_v` [N, K] the readout's v at the end of
    each sample's window; `predictions` its argmax."""

    predictions: np.ndarray
    window_v: np.ndarray
    trace: Optional[PipelineTrace]
    num_samples: int
    num_steps: int
    num_processes: int
    build_s: float
    startup_s: float
    per_step_s: float
    run_s: float
    backend: str

    def timings(self) -> dict:
        return {"build_s": self.build_s, "startup_s": self.startup_s, "per_step_s": self.per_step_s,
                "run_s": self.run_s, "num_steps": self.num_steps, "num_processes": self.num_processes}


_SCALARS = ("num_samples", "num_steps", "num_processes", "build_s", "startup_s", "per_step_s", "run_s", "backend")


def write_request(folder: Path, op: str, **options: Any) -> None:
    """The request file of `op` with its options (the client writes model.net and inputs.npz itself)."""
    if op not in OPS:
        raise ValueError(f"unknown worker op {op!r} (one of {', '.join(OPS)})")
    write_json(folder / REQUEST, {"protocol": PROTOCOL, "version": VERSION, "op": op, **options})


def read_request(folder: Path) -> dict[str, Any]:
    """The request, checked for protocol and version (a worker of another lsnn refuses it)."""
    req = json.loads((folder / REQUEST).read_text())
    if req.get("protocol") != PROTOCOL or req.get("version") != VERSION or req.get("op") not in OPS:
        raise LsnnError(f"{folder / REQUEST}: not a version-{VERSION} {PROTOCOL} request (the Lava environment "
                        f"runs another lsnn; run scripts/setup.sh again)")
    return req


def write_result(folder: Path, res: LavaResult) -> None:
    """Arrays first, then result.json (its presence means the result is complete)."""
    arrays = {"predictions": res.predictions, "window_v": res.window_v}
    meta: dict[str, Any] = {k: getattr(res, k) for k in _SCALARS}
    if res.trace is not None:
        if res.trace.readout_v is not None:
            arrays["readout_v"] = res.trace.readout_v
        for name, s in res.trace.spikes.items():
            arrays[f"spikes/{name}"] = s
        meta["trace_steps"] = res.trace.num_steps
    with atomic_path(folder / ARRAYS) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    write_json(folder / RESULT, {"protocol": PROTOCOL, "version": VERSION, "ok": True, **meta})


def write_error(folder: Path, exc: BaseException, tb: str = "") -> None:
    """An error result: the exception's type (LsnnError kinds are raised again by the client)."""
    kind = type(exc).__name__ if type(exc).__name__ in ERROR_TYPES else "error"
    write_json(folder / RESULT, {"protocol": PROTOCOL, "version": VERSION, "ok": False, "error": str(exc),
                                 "error_type": kind, "traceback": tb})


def read_result(folder: Path, timing: Optional[Timing]) -> LavaResult:
    """The worker's result as a LavaResult (its trace aligned by the client's `timing`); an error
    result is raised as the LsnnError it was, anything else as an LsnnError with the worker's words."""
    meta = json.loads((folder / RESULT).read_text())
    if meta.get("protocol") != PROTOCOL or meta.get("version") != VERSION:
        raise LsnnError(f"the Lava worker answered with another protocol ({meta.get('protocol')} "
                        f"{meta.get('version')}); run scripts/setup.sh again")
    if not meta["ok"]:
        cls = ERROR_TYPES.get(meta.get("error_type"))
        if cls is not None:
            raise cls(meta["error"])
        raise LsnnError(f"the Lava worker failed: {meta['error']}")
    with np.load(folder / ARRAYS, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    spikes = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("spikes/")}
    trace = None
    if "trace_steps" in meta:
        trace = PipelineTrace(spikes=spikes, readout_v=arrays.get("readout_v"), num_steps=int(meta["trace_steps"]),
                              num_samples=int(meta["num_samples"]), timing=timing)
    return LavaResult(predictions=arrays["predictions"], window_v=arrays["window_v"], trace=trace,
                      **{k: meta[k] for k in _SCALARS})
