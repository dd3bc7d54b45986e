"""Per-group choice between the dense and the event-driven form of a synapse group, by measurement.

What a population sends is computed by one of two forms of identical integers: the dense one
(`synapse_ops`: a torch convolution or a GEMM over every input, pruned zeros and silent neurons
included) or the event-driven one (`scatter`: only the spikes that happened, only the weights that
exist). Which is faster depends on the layer's shape, its weight and spike sparsity and the
machine, so `Tuned` measures: on its first call with a real batch (at least `TUNE_MIN_ROWS` rows
and one spike) it runs both forms twice, checks that they give the same
integers, and keeps the faster for the emulator's lifetime. The outputs never depend on the
choice, only the speed does.
"""
from __future__ import annotations

import threading
import time
from typing import Optional, Union

import numpy as np

from lsnn.runtime.emulator.synapse_ops import FusedConv, SynapseOp
from lsnn.runtime.emulator.terms import Term

TUNE_MIN_ROWS = 8          # rows (samples x steps) a batch needs before it is worth timing


def dense_terms(item: Union[FusedConv, SynapseOp], x: np.ndarray, static: bool = False
                ) -> list[tuple[str, Term]]:
    """What the dense form of `item` sends for x [M, H, W, C], as (destination, term) pairs
    (`static`: x is the encoded input, sent at every step)."""
    if isinstance(item, FusedConv):                    # float32, or uint8 + 128
        raw, zero = item.raw(x)
        return [(op.dst, Term(y, op.offset, 1, zero, static)) for op, y in item.split(raw)]
    if item.kind == "identity" and item.wrap_bits is None and x.dtype == np.uint8:
        y = x[:, ::item.stride, ::item.stride, :]       # the spikes themselves, times the weight
        return [(item.dst, Term(y, item.offset, item.scalar, 0, static))]
    return [(item.dst, Term(item(x), item.offset, 1, 0, static))]


def _values(term: Term) -> np.ndarray:
    """A term's integers as int32 (what it adds to its channels)."""
    return (term.y.astype(np.int32) - np.int32(term.zero)) * np.int32(term.scale)


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

    def terms(self, x: np.ndarray) -> list[tuple[str, Term]]:
        """What spikes x [M, H, W, C] (uint8) send, one int32 term [M, Hd, Wd, c] per group."""
        from lsnn.runtime.emulator import scatter

        out = []
        for op, (kind, wt, taps, count) in zip(self.ops, self.args):
            hd, wd = op.out_hw
            y = np.zeros((x.shape[0], hd, wd, op.channels), np.int32)
            if kind == "conv":
                scatter.conv_scatter(x, wt, taps, count, op.stride, op.padding, y, 0)
            else:
                scatter.dense_scatter(x.reshape(x.shape[0], -1), wt, y.reshape(y.shape[0], -1), 0)
            out.append((op.dst, Term(y, op.offset)))
        return out


class EventSparse:
    """A dense group whose weights run sparse (a readout split into parts), fed by spikes, in the
    event-driven form: each spike adds its few weights (`scatter.sparse_scatter`), where the
    sparse matrix product reads every input and copies it to float (on the CIFAR-size benchmark
    net's four readout groups, one thread, AMD EPYC: 1.1-3.4 ms against 3.5-4.9 ms per call of
    183 rows, the gain shrinking as the spike rate rises from 5 to 25 %). The same int32
    integers: no wrap is possible."""

    def __init__(self, op: SynapseOp) -> None:
        from lsnn.runtime.emulator import scatter

        by_input = op.sparse_t.T.tocsr()                    # (in, out): one row per source neuron
        self.op = op
        self.indptr = by_input.indptr.astype(np.int64)
        self.indices = by_input.indices.astype(np.int64)
        self.data = by_input.data.astype(np.int32)          # exact integers (bound < 2^24 or 2^53)
        self.runs = scatter.consecutive_rows(self.indptr, self.indices)

    @staticmethod
    def eligible(item: Union[FusedConv, SynapseOp]) -> bool:
        return (isinstance(item, SynapseOp) and item.kind == "dense" and item.sparse_t is not None
                and item.wrap_bits is None and item.max_in == 1)

    def terms(self, x: np.ndarray) -> list[tuple[str, Term]]:
        """What spikes x [M, H, W, C] (uint8) send: one int32 term [M, 1, 1, O]."""
        from lsnn.runtime.emulator import scatter

        y = np.zeros((x.shape[0], 1, 1, self.op.channels), np.int32)
        scatter.sparse_scatter(x.reshape(x.shape[0], -1), self.indptr, self.indices, self.data, self.runs,
                               y.reshape(x.shape[0], -1))
        return [(self.op.dst, Term(y, self.op.offset))]


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
    def eligible(item: object) -> bool:
        return isinstance(item, (FusedConv, SynapseOp)) and all(scatter_ok(op) for op in _ops_of(item))

    def terms(self, x: np.ndarray) -> list[tuple[str, Term]]:
        """What spikes x send (one row per sample-step), by the chosen form."""
        if self.choice is None and x.shape[0] >= TUNE_MIN_ROWS and x.any():
            with self._lock:
                if self.choice is None:
                    self._measure(x)
        return self.scatter.terms(x) if self.choice == "event" else dense_terms(self.dense, x)

    def _measure(self, x: np.ndarray) -> None:
        outs: dict[str, list[tuple[str, Term]]] = {}
        for name, fn in (("dense", lambda: dense_terms(self.dense, x)), ("event", lambda: self.scatter.terms(x))):
            best = float("inf")
            for _ in range(2):                       # the first run may compile or plan; the faster counts
                t0 = time.perf_counter()
                outs[name] = fn()
                best = min(best, time.perf_counter() - t0)
            self.seconds[name] = best
        for (dst, a), (_, b) in zip(outs["dense"], outs["event"]):
            if a.offset != b.offset or not np.array_equal(_values(a), _values(b)):
                raise RuntimeError(f"emulator: the event-driven form of the groups into '{dst}' differs from the "
                                   f"dense form (a bug: please report it)")
        self.choice = "event" if self.seconds["event"] < self.seconds["dense"] else "dense"
