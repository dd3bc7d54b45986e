"""Per-group choice between the dense and the event-driven form of a synapse group, by measurement.

What a population sends is computed by one of two forms of identical integers: the dense one
(`synapse_ops`: a torch convolution or a GEMM over every input, pruned zeros and silent neurons
included) or the event-driven one (`scatter`: only the spikes that happened, only the weights that
exist). Which is faster depends on the layer's shape, its weight and spike sparsity and the
machine, so `Tuned` measures: on its first call with a real batch (at least `TUNE_MIN_ROWS` rows
and one spike) it runs both forms twice into scratch buffers, checks that they give the same
integers, and keeps the faster for the emulator's lifetime. The outputs never depend on the
choice, only the speed does.
"""
from __future__ import annotations

import functools
import threading
import time
from typing import Callable, Optional, Union

import numpy as np

from lsnn.runtime.emulator.pending import PendingInputs
from lsnn.runtime.emulator.synapse_ops import FusedConv, SynapseOp

TUNE_MIN_ROWS = 8          # rows (samples x steps) a batch needs before it is worth timing


@functools.cache
def _put_kernel() -> Optional[Callable]:
    """The compiled store kernel, or None where numba is not installed (Lava's environment),
    resolved once."""
    try:
        from lsnn.runtime.emulator.kernels import put_scaled
    except ImportError:
        return None
    return put_scaled


def _put(view: np.ndarray, y: np.ndarray, scale: int, accumulate: bool, zero: int = 0) -> None:
    """view [R, M, ...] (int32) = (or +=) (y [M, ...] - zero) * scale: the compiled kernel where
    numba is installed (the fast backend), NumPy otherwise (the reference backend; Lava's
    environment)."""
    kernel = _put_kernel()
    if kernel is not None:
        kernel(view, y, np.int32(scale), np.int32(zero), accumulate)
        return
    if scale != 1 or zero != 0 or y.dtype != np.int32:
        y = (y.astype(np.int32) - np.int32(zero)) * np.int32(scale)
    if accumulate:
        view += y[None]
    else:
        view[...] = y[None]


def add_dense(item: Union[FusedConv, SynapseOp], x: np.ndarray, pending: PendingInputs, reps: int) -> None:
    """Add what the dense form of `item` sends for x [M, H, W, C] into the int32 inputs of its
    destinations ([reps * M, ...]: `reps` = T for the static input, 1 otherwise)."""
    zero = 0
    if isinstance(item, FusedConv):                    # float32 or offset uint8: converted while stored
        raw, zero = item.raw(x)
        pairs = [(op, y, 1) for op, y in item.split(raw)]
    elif item.kind == "identity" and item.wrap_bits is None and x.dtype == np.uint8:
        pairs = [(item, x[:, ::item.stride, ::item.stride, :], item.scalar)]   # spikes x weight
    else:
        pairs = [(item, item(x), 1)]
    for op, y, scale in pairs:
        buf, fresh = pending.slot(op.dst, op.offset, op.channels)
        view = buf.reshape((reps, y.shape[0]) + buf.shape[1:])
        _put(view[..., op.offset:op.offset + op.channels], y, scale, not fresh, zero)


def scatter_ok(op: SynapseOp) -> bool:
    """True if the event-driven form gives `op`'s integers: a conv or dense group from a
    population (binary spikes) whose output cannot hit Lava's Conv 24-bit / int32 wrap."""
    return (op.kind in ("conv", "dense") and op.wrap_bits is None and op.max_in == 1
            and op.sparse_t is None)      # a sparse product is event-driven already


class ScatterOps:
    """The event-driven form of a list of groups leaving one population."""

    def __init__(self, ops: list[SynapseOp]) -> None:
        from lsnn.runtime.emulator.scatter import conv_taps

        self.ops = ops
        self.args: list[tuple] = []
        for op in ops:
            w = op.weight.astype(np.int32)
            if op.kind == "conv":
                taps, count = conv_taps(w)
                self.args.append(("conv", np.ascontiguousarray(w.transpose(2, 3, 1, 0)), taps, count))
            else:
                self.args.append(("dense", np.ascontiguousarray(op.wmat_int.astype(np.int32)), None, None))

    def add(self, x: np.ndarray, pending: PendingInputs) -> None:
        """Add what spikes x [M, H, W, C] (uint8) send into `pending` (int32, [M, ...] per destination)."""
        from lsnn.runtime.emulator import scatter

        for op, (kind, wt, taps, count) in zip(self.ops, self.args):
            buf = pending.zeroed(op.dst, op.offset, op.channels)
            if kind == "conv":
                scatter.conv_scatter(x, wt, taps, count, op.stride, op.padding, buf, op.offset)
            else:
                scatter.dense_scatter(x.reshape(x.shape[0], -1), wt, buf.reshape(buf.shape[0], -1), op.offset)


def _ops_of(item: Union[FusedConv, SynapseOp]) -> list[SynapseOp]:
    return list(item.ops) if isinstance(item, FusedConv) else [item]


class Tuned:
    """A dense item (FusedConv or SynapseOp) and its event-driven twin; the faster one, once measured."""

    def __init__(self, item: Union[FusedConv, SynapseOp], choice: Optional[str] = None) -> None:
        self.dense = item
        self.scatter = ScatterOps(_ops_of(item))
        self.choice = choice                       # None until measured, then "dense" or "event"
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()              # worker threads: one measures, the others wait

    @staticmethod
    def eligible(item: Union[FusedConv, SynapseOp]) -> bool:
        return all(scatter_ok(op) for op in _ops_of(item))

    def add(self, x: np.ndarray, pending: PendingInputs) -> None:
        """Add what spikes x send into `pending` (one row per sample-step), by the chosen form."""
        if self.choice is None and x.shape[0] >= TUNE_MIN_ROWS and x.any():
            with self._lock:
                if self.choice is None:
                    self._measure(x, pending)
        if self.choice == "event":
            self.scatter.add(x, pending)
        else:
            add_dense(self.dense, x, pending, 1)

    def _measure(self, x: np.ndarray, pending: PendingInputs) -> None:
        dsts = {op.dst for op in self.scatter.ops}
        outs: dict[str, PendingInputs] = {}
        for name, fn in (("dense", lambda p: add_dense(self.dense, x, p, 1)), ("event", lambda p: self.scatter.add(x, p))):
            best = float("inf")
            for _ in range(2):                       # the first run may compile or plan; the faster counts
                scratch = PendingInputs.scratch_like({d: pending.buffers[d] for d in dsts})
                t0 = time.perf_counter()
                fn(scratch)
                best = min(best, time.perf_counter() - t0)
            outs[name] = scratch
            self.seconds[name] = best
        for d in dsts:
            if not np.array_equal(outs["dense"].take(d), outs["event"].take(d)):
                raise RuntimeError(f"emulator: the event-driven form of the groups into '{d}' differs from the "
                                   f"dense form (a bug: please report it)")
        self.choice = "event" if self.seconds["event"] < self.seconds["dense"] else "dense"
