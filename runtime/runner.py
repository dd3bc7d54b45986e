"""`lsnn run` as a library call: load model.net and a dataset, run the emulator and/or Lava, count,
compare, report.

Default (`engine="both"`): the emulator on the whole test split (accuracy, spike rates, SynOps)
and Lava on the first `samples` samples; on those the two are compared bit for bit (every
population's spikes at every Lava step, the readout's potential at the end of every window,
the predictions). `engine="lava"` counts from Lava's own recorded spikes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from lsnn.compiler.ir import Graph
from lsnn.errors import LsnnError
from lsnn.runtime.emulator import Emulator, EmulatorResult, PipelineTrace, first_difference
from lsnn.runtime.netgraph import check_runnable, encode_input
from lsnn.runtime.report import REPORT_FORMAT, REPORT_VERSION

ENGINES = ("emulator", "lava", "both")


@dataclass(frozen=True)
class RunOptions:
    net: str
    data_dir: Optional[str] = None
    dataset: Optional[str] = None
    split: str = "test"
    samples: int = 8                  # Lava samples
    limit: Optional[int] = None       # emulator samples (None: the whole split)
    engine: str = "both"
    target: Optional[str] = None      # bundled profile for energy
    profile: Optional[str] = None     # or a profile YAML
    hw: bool = False
    progress: bool = True
    emulator_backend: str = "auto"    # fast (numba + torch), numpy (reference) or auto


def load_graph(path: str) -> Graph:
    """read_net + the runtime's checks, with one-line errors."""
    from lsnn.compiler.backend.netx import read_net

    p = Path(path)
    if not p.exists():
        raise LsnnError(f"{path}: no such file")
    if p.is_dir():
        raise LsnnError(f"{path}: is a directory, expected a compiled model.net")
    graph = read_net(p)
    check_runnable(graph)
    return graph


def _dataset_name(graph: Graph, opts: RunOptions) -> str:
    meta_ds = graph.meta.get("dataset") if isinstance(graph.meta, dict) else None
    net_name = meta_ds.get("name") if isinstance(meta_ds, dict) else None
    if opts.dataset:
        return opts.dataset
    if net_name:
        return str(net_name)
    raise LsnnError(f"{opts.net} does not name its dataset; pass --dataset")


def load_inputs(graph: Graph, opts: RunOptions):
    from lsnn.data.datasets import load_dataset

    name = _dataset_name(graph, opts)
    data = load_dataset(name, opts.data_dir, opts.split)
    if tuple(data.input_shape) != tuple(graph.input.shape):
        raise LsnnError(f"dataset '{name}' has input shape {tuple(data.input_shape)} (C, H, W) but "
                        f"{opts.net} expects {tuple(graph.input.shape)}")
    k = graph.num_classes
    if data.num_classes != k:
        raise LsnnError(f"dataset '{name}' has {data.num_classes} classes but {opts.net} has {k} outputs")
    return name, data


def result_from_trace(graph: Graph, trace: PipelineTrace, x_int: np.ndarray) -> EmulatorResult:
    """An EmulatorResult (counts, maps, spikes) built from a Lava trace's sample windows."""
    tm = trace.timing
    T = graph.T
    n = trace.num_samples
    spikes, counts, maps = {}, {}, {}
    for p in graph.populations:
        d = tm.depth[p.name]
        s = trace.spikes[p.name][d:d + n * T].reshape((n, T) + p.shape)
        spikes[p.name] = s
        counts[p.name] = s.sum(axis=(0, 2, 3, 4), dtype=np.int64)
        maps[p.name] = s.sum(axis=(0, 1), dtype=np.int64)
    k = graph.population(graph.readout).shape[0]
    return EmulatorResult(predictions=np.zeros(n, np.int64), readout_v=np.zeros((n, k), np.int32),
                          readout_trace=np.zeros((n, T, k), np.int32), spike_counts=counts, spike_maps=maps,
                          input_events=np.count_nonzero(x_int, axis=0).astype(np.int64) * T,
                          num_samples=n, T=T, spikes=spikes)


def _profile(opts: RunOptions):
    from lsnn.hw_profiles.profile import load_profile

    if opts.profile and opts.target:
        raise LsnnError("give --profile or --target, not both")
    if opts.profile:
        return load_profile(path=opts.profile)
    return load_profile(target=opts.target or "loihi2")


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", disable=None if enabled else True, leave=False)


def _lava_section(graph: Graph, emulator: Emulator, x_int: np.ndarray, y: np.ndarray, opts: RunOptions
                  ) -> tuple[dict[str, Any], Any]:
    """Run Lava on the first `opts.samples` inputs and compare it with the emulator on the same
    samples (every population's spikes at every Lava step); returns (report section, lava trace)."""
    from lsnn.runtime.lava.client import run_lava

    n_lava = min(opts.samples, len(y))
    xl = x_int[:n_lava]
    bar = _bar(n_lava, "lava", opts.progress)
    t0 = time.perf_counter()
    try:
        lr = run_lava(graph, xl, record_spikes=True, hw=opts.hw, progress=bar.update)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    lava: dict[str, Any] = {"samples": n_lava, "backend": lr.backend,
                            "accuracy": float(np.mean(lr.predictions == y[:n_lava])), "wall_s": wall,
                            "samples_per_s": n_lava / wall if wall > 0 else float("inf"), **lr.timings()}
    ref = emulator.run(xl, record_spikes=True)
    ref_trace = emulator.to_pipeline(xl, ref)
    diff = first_difference(ref_trace, lr.trace) if lr.trace is not None else "no spikes recorded"
    lava["agreement"] = {
        "predictions": float(np.mean(ref.predictions == lr.predictions)),
        "readout_v_identical": bool(np.array_equal(ref.readout_v, lr.window_v)),
        "spikes_identical": diff is None,
        "first_difference": diff,
        "compared": "every population's spikes at every Lava step; readout v at every window end",
    }
    return lava, (lr.trace, xl)


def _emulator_section(emulator: Emulator, x_int: np.ndarray, y: np.ndarray, opts: RunOptions
                      ) -> tuple[dict[str, Any], EmulatorResult]:
    """Run the emulator on the whole split (or `opts.limit` samples); returns (report section, result)."""
    n_em = len(y) if opts.limit is None else min(opts.limit, len(y))
    t0 = time.perf_counter()
    emulator.warm_up()
    startup = time.perf_counter() - t0
    bar = _bar(n_em, "emulator", opts.progress)
    t0 = time.perf_counter()
    try:
        em_res = emulator.run(x_int[:n_em], progress=bar.update)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    return ({"samples": n_em, "accuracy": float(np.mean(em_res.predictions == y[:n_em])),
             "wall_s": wall, "samples_per_s": n_em / wall if wall > 0 else float("inf"),
             "batch": emulator.batch, "backend": emulator.backend, "startup_s": startup}, em_res)


def _graph_section(graph: Graph, tm: Any) -> dict[str, Any]:
    """The report's description of the net and its pipeline latency."""
    return {
        "graph": {"T": graph.T, "latency": tm.latency, "populations": len(graph.populations),
                  "synapse_groups": len(graph.synapses), "neurons": int(sum(p.size for p in graph.populations)),
                  "input": graph.input.to_dict(), "depth": dict(tm.depth)},
        "latency": {"pipeline_depth_steps": tm.latency, "steps_per_sample": graph.T,
                    "first_prediction_step": graph.T + tm.latency,
                    "note": "samples stream one per T steps; each waits T + latency steps for its prediction"},
        "trained": (graph.meta.get("metrics") or {}) if isinstance(graph.meta, dict) else {},
    }


def run_model(opts: RunOptions) -> dict[str, Any]:
    """Everything `lsnn run` does except printing and writing files; returns the report dict."""
    from lsnn.runtime.counting import count
    from lsnn.runtime.lava.client import NO_LAVA, lava_python

    if opts.engine not in ENGINES:
        raise LsnnError(f"unknown engine '{opts.engine}' (choose from {', '.join(ENGINES)})")
    if opts.samples < 0 or (opts.limit is not None and opts.limit < 1):
        raise LsnnError("--samples must be >= 0 and --limit >= 1")
    graph = load_graph(opts.net)
    profile = _profile(opts)
    name, data = load_inputs(graph, opts)
    x_int = encode_input(graph, data.x)
    y = data.y
    tm = check_runnable(graph)
    report: dict[str, Any] = {"format": REPORT_FORMAT, "version": REPORT_VERSION, "net": str(opts.net),
                              "dataset": name, "split": opts.split, **_graph_section(graph, tm)}
    try:
        emulator = Emulator(graph, backend=opts.emulator_backend)
    except (ValueError, ImportError) as e:
        raise LsnnError(f"emulator backend '{opts.emulator_backend}': {e}") from None
    em_res: Optional[EmulatorResult] = None
    lava_trace = None
    # Lava runs in its own worker process (lava.client), so the order does not matter for safety
    if opts.engine in ("lava", "both") and min(opts.samples, len(y)) > 0:
        if opts.engine == "both" and lava_python() is None:     # no Lava environment: the emulator alone
            report["lava_skipped"] = NO_LAVA
        else:
            report["lava"], lava_trace = _lava_section(graph, emulator, x_int, y, opts)
    if opts.engine in ("emulator", "both"):
        report["emulator"], em_res = _emulator_section(emulator, x_int, y, opts)
    counts_source = "emulator"
    count_res = em_res
    if count_res is None and lava_trace is not None:
        count_res = result_from_trace(graph, *lava_trace)
        counts_source = "lava"
    if count_res is None:
        raise LsnnError("nothing was run (engine lava with --samples 0)")
    report["counts_source"] = counts_source
    report["counts"] = count(graph, count_res, profile).to_dict()
    return report
