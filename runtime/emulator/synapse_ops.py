"""Synapse groups as the chip applies them (Lava's Conv / Dense / identity semantics).

`SynapseOp` is one group in NumPy (im2col + one exact float GEMM): the reference. `FusedConv`
runs the conv groups from one population with the same geometry (into one destination, or
into several) as one convolution (oneDNN int8 on spikes, else torch float32; exact because every partial sum is an
integer below 2^24), the emulator's fast path.

Layout: activations channels-last [M, H, W, C]; outputs int32 as Lava delivers them (Conv wraps
each output to signed 24 bits, Dense / identity to int32).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.sparse import csr_matrix

from lsnn.compiler.ir import INPUT_NAME, Graph, SynapseGroup
from lsnn.contract.chip import MAX_UV, STATE_BITS, signed_clamp
from lsnn.runtime.netgraph import effective_weight, input_is_graded, runs_sparse

_F32_EXACT = 2 ** 24
_F64_EXACT = 2 ** 53
_COLS_BYTES = 2 * 2 ** 20       # im2col chunk budget (small chunks stay in cache: ~1.5x faster)




class SynapseOp:
    """One synapse group: x [M, Hs, Ws, Cs] (int) -> int32 [M, Hd, Wd, Cg] as Lava delivers it."""

    def __init__(self, s: SynapseGroup, graph: Graph) -> None:
        self.name = s.name
        self.kind = s.kind
        self.src = s.src
        self.dst = s.dst
        self.offset = s.dst_channel_offset
        self.stride = s.stride
        self.padding = s.padding
        cs, hs, ws = graph.shape_of(s.src)
        cd, hd, wd = graph.shape_of(s.dst)
        self.src_shape = (cs, hs, ws)
        self.out_hw = (hd, wd)
        graded = s.src == INPUT_NAME and input_is_graded(graph)
        max_in = (1 << graph.input.bits) - 1 if graded else 1
        w = effective_weight(s)
        self.weight = w
        self.sparse_t: Optional[csr_matrix] = None     # (out, in) when a dense group runs sparse
        if s.kind == "conv":
            o, ci, kh, kw = w.shape
            self.channels = o
            self.kernel = (kh, kw)
            self.taps = [(i, j) for i in range(kh) for j in range(kw) if np.any(w[:, :, i, j])]
            bound = int(np.abs(w).reshape(o, -1).sum(axis=1).max()) * max_in
            wmat = np.stack([w[:, :, i, j].T for i, j in self.taps]) if self.taps else \
                np.zeros((0, ci, o), dtype=np.int64)
            self.wmat_int = wmat.reshape(-1, o)
            self.wrap_bits: Optional[int] = STATE_BITS if bound >= MAX_UV else None   # Conv: signed 24-bit
        elif s.kind == "dense":
            o = w.shape[0]
            self.channels = o
            # C-major (C, H, W) columns -> our channels-last flattening (H, W, C)
            hwc = w.reshape(o, cs, hs, ws).transpose(0, 2, 3, 1).reshape(o, -1)
            bound = int(np.abs(w).sum(axis=1).max()) * max_in
            # a mostly-zero matrix (a readout split into parts: each column feeds one part) runs
            # as a sparse product; the integers are the same
            self.sparse_t = csr_matrix(hwc) if runs_sparse(hwc) else None
            self.wmat_int = None if self.sparse_t is not None else hwc.T.copy()
            self.wrap_bits = 32 if bound >= 2 ** 31 else None                  # int32 channel
        else:  # identity
            self.channels = cs
            bound = abs(int(w)) * max_in
            self.wrap_bits = 32 if bound >= 2 ** 31 else None
            self.scalar = int(w)
        self.bound = bound          # max |output| of one step (before Lava's wrap)
        self.max_in = max_in
        if bound < _F32_EXACT:
            self.ftype: Optional[type] = np.float32
        elif bound < _F64_EXACT:
            self.ftype = np.float64
        else:
            self.ftype = None                                                  # int64 (slow, exact)
        if self.sparse_t is not None:
            self.sparse_t = self.sparse_t.astype(self.ftype or np.int64)
            self.wmat = None
        elif s.kind != "identity":
            self.wmat = self.wmat_int.astype(self.ftype) if self.ftype else self.wmat_int

    def _finish(self, out: np.ndarray) -> np.ndarray:
        if self.wrap_bits is None:
            return out.astype(np.int32)
        return signed_clamp(out.astype(np.int64), self.wrap_bits).astype(np.int32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        m = x.shape[0]
        hd, wd = self.out_hw
        if self.kind == "identity":
            s = self.stride
            sub = x[:, ::s, ::s, :]
            if self.wrap_bits is None:
                return sub.astype(np.int32) * np.int32(self.scalar)
            return self._finish(sub.astype(np.int64) * self.scalar)
        if self.kind == "dense":
            flat = x.reshape(m, -1)
            dt = self.ftype or np.int64
            if self.sparse_t is not None:
                return self._finish(np.asarray((self.sparse_t @ flat.astype(dt).T).T)).reshape(m, 1, 1, self.channels)
            return self._finish(flat.astype(dt) @ self.wmat).reshape(m, 1, 1, self.channels)
        # conv via im2col over the taps that hold a non-zero weight: the columns are gathered in
        # the input's own narrow dtype (uint8 spikes), converted once, then one GEMM
        o = self.channels
        if not self.taps:
            return np.zeros((m, hd, wd, o), dtype=np.int32)
        p, s = self.padding, self.stride
        ci = x.shape[3]
        if x.dtype != np.uint8:
            x = x.astype(np.int16 if self.max_in < 2 ** 15 else np.int32, copy=False)
        k = len(self.taps) * ci
        dt = self.ftype or np.int64
        per_sample = hd * wd * k * (np.dtype(dt).itemsize + x.dtype.itemsize)
        chunk = max(1, min(m, _COLS_BYTES // max(per_sample, 1)))
        out = np.empty((m, hd, wd, o), dtype=np.int32)
        hs, ws = x.shape[1], x.shape[2]
        for a in range(0, m, chunk):
            b = min(m, a + chunk)
            if p:
                xp = np.zeros((b - a, hs + 2 * p, ws + 2 * p, ci), dtype=x.dtype)
                xp[:, p:p + hs, p:p + ws] = x[a:b]
            else:
                xp = x[a:b]
            cols = np.empty((b - a, hd, wd, len(self.taps), ci), dtype=x.dtype)
            for t, (i, j) in enumerate(self.taps):
                cols[:, :, :, t, :] = xp[:, i:i + s * (hd - 1) + 1:s, j:j + s * (wd - 1) + 1:s, :]
            res = cols.reshape(-1, k).astype(dt) @ self.wmat
            out[a:b] = self._finish(res).reshape(b - a, hd, wd, o)
        return out


class FusedConv:
    """Conv groups with one source and one geometry as a single convolution
    (weights stacked along the output channels), exact for groups whose bound is below 2^24 and
    that cannot wrap (`fusable`): oneDNN's int8 kernel where the source sends spikes and it passes its self-check
    (`int8_conv`), else a float32 torch conv2d. Splitting the result gives each group's output."""

    def __init__(self, ops: list[SynapseOp]) -> None:
        import torch

        from lsnn.runtime.emulator.int8_conv import Int8Conv

        first = ops[0]
        for op in ops:
            if not self.fusable(op) or (op.src, op.kernel, op.stride, op.padding) != \
                    (first.src, first.kernel, first.stride, first.padding):
                raise ValueError(f"synapse group '{op.name}' cannot be fused with '{first.name}'")
        self.ops = ops
        self.src = first.src
        self.stride, self.padding = first.stride, first.padding
        w = np.concatenate([op.weight for op in ops], 0)
        self.weight = torch.from_numpy(w.astype(np.float32))
        self.bounds = np.cumsum([0] + [op.channels for op in ops])
        binary = all(op.max_in == 1 for op in ops)
        # a 1x1 conv with stride s and no padding = a stride-1 conv of every s-th pixel: the
        # form oneDNN's int8 kernel computes correctly on every CPU (`int8_conv`)
        self.subsample = self.stride if first.kernel == (1, 1) and self.padding == 0 else 1
        conv_stride = self.stride // self.subsample
        in_hw = tuple(-(-n // self.subsample) for n in first.src_shape[1:])
        self.int8 = Int8Conv.build(w, conv_stride, self.padding, in_hw) if binary else None
        self.form = "int8" if self.int8 is not None else "float32"

    @staticmethod
    def fusable(op: SynapseOp) -> bool:
        """True if `op` is a conv whose outputs are exact in float32 and never wrap."""
        return op.kind == "conv" and op.wrap_bits is None and op.ftype is np.float32 and bool(op.taps)

    def raw(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """x [M, Hs, Ws, Cs] -> (y [M, Hd, Wd, O_all], zero): every group's integers side by side,
        as y - zero (float32 and 0, or uint8 and its zero point where the int8 kernel's outputs fit)."""
        import torch

        if self.int8 is not None and x.dtype == np.uint8:
            s = self.subsample
            return self.int8(x[:, ::s, ::s, :] if s > 1 else x), self.int8.zero
        xt = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()   # channels_last
        y = torch.nn.functional.conv2d(xt, self.weight, stride=self.stride, padding=self.padding)
        return y.permute(0, 2, 3, 1).numpy(), 0

    def split(self, y: np.ndarray) -> list[tuple[SynapseOp, np.ndarray]]:
        """`raw`'s result -> [(op, its channels)] (views)."""
        return [(op, y[..., self.bounds[k]:self.bounds[k + 1]]) for k, op in enumerate(self.ops)]

    def __call__(self, x: np.ndarray) -> list[tuple[SynapseOp, np.ndarray]]:
        """x [M, Hs, Ws, Cs] -> [(op, int32 [M, Hd, Wd, O_op])] for every fused group."""
        y, zero = self.raw(x)
        return self.split(y.astype(np.int32) - np.int32(zero))


def fuse_by_source(ops: list[SynapseOp], per_destination: bool = True) -> list["FusedConv | SynapseOp"]:
    """Group `ops` for the fast path: fusable convs by (source, destination, kernel, stride,
    padding) into `FusedConv`s, or across destinations if not `per_destination`; every other
    group stays a `SynapseOp` (NumPy). Order: first appearance. Per destination, the LIF reads
    each destination's input as whole contiguous pixels (`kernels.lif_gather`), which measured
    ~8 % faster on large batches of the CIFAR-size net; across destinations there are fewer
    convolution calls, whose fixed cost dominates small batches."""
    groups: dict[tuple, list[SynapseOp]] = {}
    out: list[object] = []
    for op in ops:
        if FusedConv.fusable(op):
            key = (op.src, op.dst if per_destination else None, op.kernel, op.stride, op.padding)
            if key not in groups:
                groups[key] = []
                out.append(key)
            groups[key].append(op)
        else:
            out.append(op)
    return [FusedConv(groups[o]) if isinstance(o, tuple) else o for o in out]  # type: ignore[misc]
