"""Vectorised integer emulator of a compiled net, bit-exact to Lava's fixed-point simulation.

Two schedules of the same integer arithmetic (docs/SEMANTICS.md sections 3-4):

- `Emulator.run` ("ideal time", the fast path): no pipeline delay, as the trained model runs. The
  net is feed-forward, so each population is computed for all T steps of a batch of samples at
  once: when its spikes exist it pushes them through its outgoing synapse groups, whose outputs
  wait as they are (`terms`) until each destination sums them and runs the LIF recurrence over T.
  Two backends of identical integers: "fast" (conv groups from one population with one
  geometry as one convolution, per destination on large batches and across destinations on
  small ones (`SMALL_BATCH_ROWS`): oneDNN's int8 kernel on spikes
  (`int8_conv`), else torch float32; exact because every partial sum is an integer below 2^24,
  checked per group; a readout in parts fed by spikes event-driven, `event_ops.EventSparse`;
  the LIF as a compiled numba kernel that sums the terms as it goes,
  `kernels`) and "numpy" (the reference: one
  im2col GEMM per group in float32/float64, the LIF in `lsnn.contract.chip`). Where the group bounds prove
  that no current decay or 24-bit wrap can occur, both use an exact float64 form of the LIF.
  Groups fed by the (static) input are computed once per sample and reused at every step.
  Batches run on worker threads, each kernel single-threaded inside its worker (`parallel`).
- `step_pipeline` (the oracle): Lava's schedule step by step: every synapse adds one step, each
  edge its extra `delay`, LIFReset zeroes a population at steps s with s % T == (1 + depth) % T,
  samples stream one per T steps, the input is a ring buffer of `N*T + max depth` columns (zero
  after the last sample).
- `to_pipeline` turns an ideal-time result into the exact per-layer trains of the Lava pipeline:
  population P at Lava step k*T + t + depth(P) is ideal step t of sample k; the steps before
  P's first wavefront do not depend on the input (they are a zero-input `step_pipeline` run) and
  the steps after the last sample belong to phantom all-zero samples.

Synapse outputs follow Lava's processes: `Conv` wraps each output to 24 bits, `Dense`/`Sparse`
to int32, the neuron's InPort sums in int32. Layout inside: activations are channels-last
[M, H, W, C] (uint8 spikes); results are returned as (C, H, W). No Lava; torch and numba only
in the "fast" backend.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from lsnn.compiler.ir import INPUT_NAME, Graph
from lsnn.contract.chip import LifParams, lif_step, reset_state
from lsnn.runtime.emulator.event_ops import EventSparse, Tuned, dense_terms
from lsnn.runtime.emulator.lif_batch import run_lif
from lsnn.runtime.emulator.lif_fast import fast_path_ok
from lsnn.runtime.emulator.parallel import (
    available_cpus,
    numba_layer_is_threadsafe,
    torch_single_threaded,
    worker_setup,
)
from lsnn.runtime.emulator.synapse_ops import SynapseOp, fuse_by_source
from lsnn.runtime.emulator.terms import Term
from lsnn.runtime.netgraph import check_input_int, check_runnable, input_is_graded
from lsnn.runtime.results import EmulatorResult, PipelineTrace

SMALL_BATCH_ROWS = 64            # below (samples x steps), convs fused across destinations
CACHE_BYTES = 24 * 2 ** 20      # the largest population per batch at 4 bytes a neuron-step (see __init__)


# ----------------------------------------------------------------------------------------------
# the emulator


@dataclass
class _Totals:
    """Spike totals of one worker: per population, per step (counts) and per neuron (maps, HWC)."""

    counts: dict[str, np.ndarray]
    maps: dict[str, np.ndarray]

    @staticmethod
    def zeros(g: Graph) -> "_Totals":
        return _Totals({p.name: np.zeros(g.T, np.int64) for p in g.populations},
                       {p.name: np.zeros(p.shape[1:] + p.shape[:1], np.int64) for p in g.populations})

    @staticmethod
    def sum(parts: list["_Totals"]) -> "_Totals":
        return _Totals({k: sum(t.counts[k] for t in parts) for k in parts[0].counts},
                       {k: sum(t.maps[k] for t in parts) for k in parts[0].maps})


BACKENDS = ("auto", "fast", "numpy")
SYNAPSE_FORMS = ("measure", "dense", "event")


def resolve_backend(backend: str) -> str:
    """"fast" or "numpy" for a requested backend; "auto" is "fast" when torch and numba import."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown emulator backend {backend!r} (one of {', '.join(BACKENDS)})")
    if backend == "numpy":
        return backend
    try:
        import numba  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        if backend == "fast":
            raise
        return "numpy"
    return "fast"


class Emulator:
    """Integer emulator of `graph` (an integer-stage compiler Graph), bit-exact to Lava fixed_pt."""

    def __init__(self, graph: Graph, *, max_batch: int = 256, act_budget_bytes: int = 256 * 2 ** 20,
                 cache_bytes: int = CACHE_BYTES, backend: str = "auto", synapse_form: str = "dense",
                 threads: Optional[int] = None) -> None:
        """`backend`: "fast" (fused conv groups as exact convolutions, oneDNN int8 on spikes or
        float32 torch, the compiled numba LIF summing the groups' outputs), "numpy" (the reference: one im2col GEMM per group, array LIF), or
        "auto" (fast when torch and numba import). Both give identical integers. `synapse_form`
        (fast backend, groups leaving a population): "dense" (default: measured fastest overall,
        benchmarks/bench_runtime.py), "measure" (each group in the form, dense or event-driven
        (`event_ops`), measured faster on its first batch) or "event".
        `threads`: worker threads that run whole batches (`parallel`; None: the CPUs available).
        The batch keeps the largest population at 4 bytes per neuron-step within `cache_bytes`
        (a size rule measured on the CIFAR-size net, see below)."""
        self.backend = resolve_backend(backend)
        self._kernels = None
        if self.backend == "fast":            # numba compiles (or loads its cache) on first call
            from lsnn.runtime.emulator import kernels

            self._kernels = kernels
        self.timing = check_runnable(graph)
        self.graph = graph
        self.T = graph.T
        self.ops = [SynapseOp(s, graph) for s in graph.synapses]
        self.incoming = {p.name: [op for op in self.ops if op.dst == p.name] for p in graph.populations}
        if synapse_form not in SYNAPSE_FORMS:
            raise ValueError(f"unknown synapse form {synapse_form!r} (one of {', '.join(SYNAPSE_FORMS)})")
        self.outgoing, self.outgoing_small = self._outgoing_tables(synapse_form)
        self.params = {p.name: LifParams.make(p.du, p.dv, p.bias_mant, p.bias_exp, p.vth_mant)
                       for p in graph.populations}
        # exact no-decay form of the LIF where no current decay and no 24-bit wrap can occur
        bounds = {p.name: sum(op.bound for op in self.incoming[p.name]) for p in graph.populations}
        self.nodecay = {name: fast_path_ok(self.params[name], b) for name, b in bounds.items()}
        # batch size: the uint8 spikes of every population, the groups' outputs waiting for
        # their destinations (at most float32 + int32 per neuron) and the widest conv output,
        # over T x batch, within budget (im2col is chunked separately); and the largest
        # population at 4 bytes per neuron-step within `cache_bytes`. Measured on the CIFAR-size net of
        # benchmarks/bench_runtime.py (2-core Xeon, 2 workers): batch 12 506, 23 718, 32 751,
        # 61 833 samples/s
        sizes = [int(np.prod(p.shape)) for p in graph.populations]
        per_sample = self.T * (5 * sum(sizes) + 8 * max(sizes))
        self.batch = int(max(1, min(max_batch, act_budget_bytes // max(per_sample, 1),
                                    cache_bytes // (4 * self.T * max(sizes)))))
        self._ws: dict[int, dict[str, np.ndarray]] = {}
        self.threads = threads
        self._threadsafe: Optional[bool] = None

    def _outgoing_tables(self, synapse_form: str) -> tuple[dict, dict]:
        """What each source pushes to its destinations once its spikes exist: the table for
        full batches and the one for small batches (convs fused across destinations)."""
        outgoing: dict[str, list[SynapseOp]] = {}
        for op in self.ops:
            outgoing.setdefault(op.src, []).append(op)
        fast = self.backend == "fast"
        full = {src: (fuse_by_source(ops) if fast else list(ops)) for src, ops in outgoing.items()}
        small = {src: (fuse_by_source(ops, per_destination=False) if fast else list(ops))
                 for src, ops in outgoing.items()}
        if not fast:
            return full, small
        for table in (full, small):                  # spike-fed sparse readouts: event-driven
            for src, items in table.items():
                table[src] = [EventSparse(it) if EventSparse.eligible(it) else it for it in items]
        if synapse_form != "dense":
            full = {src: [Tuned(it, None if synapse_form == "measure" else synapse_form)
                          if src != INPUT_NAME and Tuned.eligible(it) else it for it in items]
                    for src, items in full.items()}
            small = full
        return full, small

    # -- ideal time ------------------------------------------------------------------------

    def run(self, x_int: np.ndarray, *, record_spikes: bool = False,
            progress: Optional[Callable[[int], None]] = None) -> EmulatorResult:
        """Run N encoded samples x_int [N, C, H, W] (ints in [0, 2^bits - 1]) for T steps each."""
        g = self.graph
        x_int = check_input_int(g, x_int)
        n = x_int.shape[0]
        T = self.T
        k = g.population(g.readout).shape[0]
        readout_trace = np.zeros((n, T, k), dtype=np.int32)
        spikes = ({p.name: np.zeros((n, T) + p.shape, dtype=np.uint8) for p in g.populations}
                  if record_spikes else None)
        per_sample = np.zeros(n, dtype=np.int64)
        batches, workers = self._split(n)
        totals = [_Totals.zeros(g) for _ in range(workers)]
        lock = threading.Lock()

        def work(w: int) -> None:
            if workers > 1:
                worker_setup()
            for a, b in batches[w::workers]:
                consume = self._consumer(totals[w], per_sample, spikes, a, b)
                maps = totals[w].maps
                readout_trace[a:b] = self._run_batch(x_int[a:b], consume, lambda name: maps[name].reshape(-1), w)
                if progress is not None:
                    with lock:
                        progress(b - a)

        if workers == 1:
            work(0)
        else:
            with torch_single_threaded(), ThreadPoolExecutor(workers) as pool:
                for f in [pool.submit(work, w) for w in range(workers)]:
                    f.result()
        tot = _Totals.sum(totals)
        readout_v = np.ascontiguousarray(readout_trace[:, -1])
        preds = g.predictions(readout_v)                  # the host's sum of readout parts, argmax
        maps = {name: m.transpose(2, 0, 1) for name, m in tot.maps.items()}
        return EmulatorResult(predictions=preds, readout_v=readout_v, readout_trace=readout_trace,
                              spike_counts=tot.counts, spike_maps=maps,
                              input_events=np.count_nonzero(x_int, axis=0).astype(np.int64) * T,
                              num_samples=n, T=T, spikes=spikes, per_sample_spikes=per_sample)

    def _split(self, n: int) -> tuple[list[tuple[int, int]], int]:
        """Batches [(a, b)] of n samples, at most `self.batch` each, and the worker threads that
        run them. The number of batches is a multiple of the workers, with sizes within one of
        each other, so the workers finish together (1,000 samples at batch 61 on two workers:
        18 batches of 55-56 instead of 17 of 61, one worker idle for the last). A run that fits one
        batch stays one (split across workers, 4 samples ran 1.5x slower)."""
        if n == 0:
            return [], 1
        k = -(-n // self.batch)
        workers = self._worker_count(k)      # one batch: one thread, its kernels on every core
        k = min(n, -(-k // workers) * workers)
        edges = [i * n // k for i in range(k + 1)]
        return list(zip(edges[:-1], edges[1:])), workers

    def _worker_count(self, n_batches: int) -> int:
        """Worker threads for a run of `n_batches` batches (1: every kernel uses the cores itself)."""
        want = min(self.threads or available_cpus(), n_batches)
        if want <= 1 or self._kernels is None:
            return 1
        if self._threadsafe is None:
            self._threadsafe = numba_layer_is_threadsafe(self._kernels)
        return want if self._threadsafe else 1

    def _consumer(self, tot: "_Totals", per_sample: np.ndarray, spikes: Optional[dict[str, np.ndarray]],
                  a: int, b: int) -> Callable[[str, np.ndarray, np.ndarray], None]:
        """What to do with the spikes s [T, B, H, W, C] (uint8) of a population for samples a..b
        and their counts tb [B, T]: add them to the totals `tot` and per_sample[a:b], and record
        the spikes if asked."""

        def consume(name: str, s: np.ndarray, tb: np.ndarray) -> None:
            tot.counts[name] += tb.sum(axis=0)
            per_sample[a:b] += tb.sum(axis=1)
            if spikes is not None:
                spikes[name][a:b] = s.transpose(1, 0, 4, 2, 3)
        return consume

    def warm_up(self) -> None:
        """Run one all-zero sample: loads the compiled kernels (JIT on the first use ever, then
        from numba's disk cache) and sets up torch's convolutions, so that timing `run` measures
        throughput, not start-up."""
        self.run(np.zeros((1,) + self.graph.input.shape, np.int32))

    def _workspace(self, worker: int) -> dict[str, np.ndarray]:
        """Per-population spike buffers for a full batch, one set per worker, allocated once per
        emulator and reused: fresh memory page-faults on first touch, which costs as much as the
        arithmetic."""
        if worker not in self._ws:
            n = self.T * self.batch
            self._ws[worker] = {p.name: np.zeros((n,) + p.shape[1:] + p.shape[:1], np.uint8)
                                for p in self.graph.populations}
        return self._ws[worker]

    def _push(self, src: str, x: np.ndarray, terms: dict[str, list[Term]], static: bool = False) -> None:
        """What population (or input) `src` sends, x [M, H, W, C], appended to the terms of its
        destinations (`static`: x is the encoded input, sent at every step)."""
        rows = x.shape[0] * (self.T if static else 1)
        for item in (self.outgoing if rows >= SMALL_BATCH_ROWS else self.outgoing_small).get(src, []):
            pairs = item.terms(x) if isinstance(item, (Tuned, EventSparse)) else dense_terms(item, x, static)
            for dst, term in pairs:
                terms[dst].append(term)

    def _run_batch(self, x_int: np.ndarray, consume: Callable[[str, np.ndarray, np.ndarray], None],
                   per_neuron: Callable[[str], np.ndarray], worker: int = 0) -> np.ndarray:
        """Ideal-time run of one batch: populations in topological order, each pushing what its
        spikes send to its destinations' terms as soon as they exist; adds each neuron's spikes
        into per_neuron(population), hands each population's spikes and its spikes per sample and
        step to `consume`; returns the readout's v trace [B, T, G*K]."""
        g = self.graph
        T = self.T
        bsz = x_int.shape[0]
        x_hwc = np.ascontiguousarray(x_int.transpose(0, 2, 3, 1))            # [B, H, W, C] int32
        if not input_is_graded(g):
            x_hwc = (x_hwc != 0).astype(np.uint8)                            # binary payload
        ws = self._workspace(worker)
        terms: dict[str, list[Term]] = {p.name: [] for p in g.populations}
        self._push(INPUT_NAME, x_hwc, terms, static=True)
        readout_trace = np.zeros((bsz, T, g.population(g.readout).shape[0]), dtype=np.int32)
        for p in g.populations:
            c, h, w = p.shape
            s = ws[p.name][:T * bsz].reshape(T, bsz, h, w, c)
            is_readout = p.name == g.readout
            tr, tb = run_lif(self._kernels, self.params[p.name], self.nodecay[p.name], terms.pop(p.name), s,
                             per_neuron(p.name), is_readout)
            if is_readout:
                readout_trace[:] = tr.reshape(T, bsz, c).transpose(1, 0, 2)
            consume(p.name, s, tb)
            self._push(p.name, s.reshape(T * bsz, h, w, c), terms)
        return readout_trace

    # -- Lava's schedule ---------------------------------------------------------------------

    def step_pipeline(self, x_int: np.ndarray, num_steps: Optional[int] = None) -> PipelineTrace:
        """Lava's pipelined schedule, one step at a time, for the stream of samples x_int [N, ...].

        The oracle for the Lava tests: the same synapse and neuron arithmetic as `run`, on Lava's
        timing (see the module doc). `num_steps` defaults to N*T + max depth.
        """
        g = self.graph
        tm = self.timing
        T = self.T
        x_int = check_input_int(g, x_int) if len(x_int) else np.zeros((0,) + g.input.shape, np.int32)
        n = x_int.shape[0]
        steps = tm.num_steps(n) if num_steps is None else int(num_steps)
        graded = input_is_graded(g)
        zero_in = np.zeros(g.input.shape[1:] + g.input.shape[:1], dtype=np.int32 if graded else np.uint8)

        def input_at(step: int) -> np.ndarray:                # what the ring buffer sends at `step`
            if 1 <= step <= n * T:
                x = x_int[(step - 1) // T].transpose(1, 2, 0)
                return x if graded else (x != 0).astype(np.uint8)
            return zero_in

        zeros_out = {p.name: np.zeros(p.shape[1:] + p.shape[:1], dtype=np.uint8) for p in g.populations}
        hist: dict[str, list[np.ndarray]] = {p.name: [] for p in g.populations}   # hist[P][s-1]
        state = {p.name: (np.zeros(p.shape[1:] + p.shape[:1], np.int32),
                          np.zeros(p.shape[1:] + p.shape[:1], np.int32)) for p in g.populations}
        params = {p.name: LifParams(self.params[p.name].du, self.params[p.name].dv,
                                    self.params[p.name].bias.reshape(1, 1, -1), self.params[p.name].vth_eff)
                  for p in g.populations}
        ro = g.population(g.readout)
        rv = np.zeros((steps, ro.shape[0]), dtype=np.int32)

        def out_of(src: str, step: int) -> np.ndarray:
            if step < 1:
                return zero_in if src == INPUT_NAME else zeros_out[src]
            return input_at(step) if src == INPUT_NAME else hist[src][step - 1]

        for step in range(1, steps + 1):
            for p in g.populations:
                c, h, w = p.shape
                a = np.zeros((h, w, c), dtype=np.int32)
                for op in self.incoming[p.name]:
                    x = out_of(op.src, step - 1 - tm.delay[op.name])
                    a[..., op.offset:op.offset + op.channels] += op(x[None])[0]
                u, v = state[p.name]
                if step % T == tm.reset_offset(p.name):
                    reset_state(u, v)
                hist[p.name].append(lif_step(u, v, a, params[p.name]).astype(np.uint8))
                if p.name == g.readout:
                    rv[step - 1] = v.reshape(-1)
        spikes = {name: np.stack(h).transpose(0, 3, 1, 2) if h else
                  np.zeros((0,) + g.population(name).shape, np.uint8) for name, h in hist.items()}
        return PipelineTrace(spikes=spikes, readout_v=rv, num_steps=steps, num_samples=n, timing=tm)

    def to_pipeline(self, x_int: np.ndarray, result: Optional[EmulatorResult] = None) -> PipelineTrace:
        """The Lava-aligned trace of streaming x_int, built from the ideal-time emulator.

        `result` (if given) must come from `run(x_int, record_spikes=True)`. Rows before a
        population's first wavefront come from a zero-input `step_pipeline`; rows after the last
        sample from phantom all-zero samples.
        """
        g = self.graph
        tm = self.timing
        T = self.T
        x_int = check_input_int(g, x_int)
        n = x_int.shape[0]
        steps = tm.num_steps(n)
        if result is None or result.spikes is None:
            result = self.run(x_int, record_spikes=True)
        n_phantom = max(1, -(-tm.max_depth // T))            # zero samples after the last one
        phantom = self.run(np.zeros((n_phantom,) + g.input.shape, np.int32), record_spikes=True)
        prefix = self.step_pipeline(np.zeros((0,) + g.input.shape, np.int32), num_steps=tm.max_depth)
        spikes = {}
        for p in g.populations:
            d = tm.depth[p.name]
            tr = np.zeros((steps,) + p.shape, dtype=np.uint8)
            tr[:d] = prefix.spikes[p.name][:d]
            body = np.concatenate([result.spikes[p.name], phantom.spikes[p.name]], axis=0)
            body = body.reshape((-1,) + p.shape)                          # [(N+1)*T, C, H, W]
            tr[d:] = body[:steps - d]
            spikes[p.name] = tr
        L = tm.latency
        rv = np.zeros((steps, result.readout_v.shape[1]), dtype=np.int32)
        rv[:L] = prefix.readout_v[:L]
        body = np.concatenate([result.readout_trace, phantom.readout_trace], axis=0).reshape(
            -1, result.readout_v.shape[1])
        rv[L:] = body[:steps - L]
        return PipelineTrace(spikes=spikes, readout_v=rv, num_steps=steps, num_samples=n, timing=tm)
