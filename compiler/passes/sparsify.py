"""Pass 4: pruned kernels -> synapse statistics and the cheaper storage encoding per group.

Synapses live at the destination core, one per (source neuron, destination neuron) pair: a conv
kernel is replicated at every output position (Loihi does not share conv weights across
neurons; we count what a chip stores). For each group (docs: `ir.SparseStats`):

- `nnz`: kept kernel entries (mask True and weight != 0; pruned entries are exactly 0);
- `synapses` / `dense_synapses`: expanded pairs with / without pruning, borders counted exactly
  (a tap outside the padded input is no synapse);
- `fan_in_max` / `fan_out_max`: most kept synapses into one destination neuron / out of one
  source neuron;
- memory: dense = dense_synapses * weight_bits (every potential input has a slot, zeros
  included); sparse = synapses * (weight_bits + index_bits) with index_bits =
  ceil(log2(potential inputs of a neuron)); `encoding` = the smaller (ties: dense).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from lsnn.compiler.ir import Graph, SparseStats, SynapseGroup
from lsnn.errors import IRError


def valid_taps(n_out: int, n_in: int, k: int, stride: int, padding: int) -> np.ndarray:
    """(n_out, k) 0/1: output index i with tap j reads input i*stride - padding + j inside [0, n_in)."""
    pos = np.arange(n_out)[:, None] * stride - padding + np.arange(k)[None, :]
    return ((pos >= 0) & (pos < n_in)).astype(np.int64)


def source_taps(n_in: int, n_out: int, k: int, stride: int, padding: int) -> np.ndarray:
    """(n_in, k) 0/1: input index r is read by tap j of some output i (r = i*stride - padding + j)."""
    t = np.arange(n_in)[:, None] + padding - np.arange(k)[None, :]
    return ((t >= 0) & (t % stride == 0) & (t // stride < n_out)).astype(np.int64)


def kept_mask(s: SynapseGroup) -> np.ndarray:
    """Stored kernel entries: mask True and weight non-zero."""
    nz = np.asarray(s.weight) != 0
    return nz & s.mask if s.mask is not None else nz


def conv_position_counts(kernel_counts: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int],
                         stride: int, padding: int) -> np.ndarray:
    """Synapses at each output position for per-tap counts K (kh, kw): vr @ K @ vc.T, shape (H, W)."""
    kh, kw = kernel_counts.shape
    vr = valid_taps(dst_hw[0], src_hw[0], kh, stride, padding)
    vc = valid_taps(dst_hw[1], src_hw[1], kw, stride, padding)
    return vr @ kernel_counts @ vc.T


def group_stats(graph: Graph, s: SynapseGroup) -> SparseStats:
    """The SparseStats of one integer-stage group."""
    src, dst = graph.shape_of(s.src), graph.shape_of(s.dst)
    if s.kind == "identity":
        c = src[0]
        n = c * dst[1] * dst[2]
        nz = int(int(s.weight) != 0)
        return SparseStats("dense", nnz=nz, synapses=n * nz, dense_synapses=n, fan_in_max=nz,
                           fan_out_max=nz, index_bits=0, dense_bits=n * s.weight_bits,
                           sparse_bits=n * nz * s.weight_bits)
    kept = kept_mask(s)
    if s.kind == "dense":
        o, n_in = kept.shape
        syn = int(kept.sum())
        dense = o * n_in
        fan_in = int(kept.sum(axis=1).max())
        fan_out = int(kept.sum(axis=0).max())
        potential = n_in
    else:
        o, ci, kh, kw = kept.shape
        vr = valid_taps(dst[1], src[1], kh, s.stride, s.padding)
        vc = valid_taps(dst[2], src[2], kw, s.stride, s.padding)
        per_out = kept.sum(axis=1).astype(np.int64)          # (O, kh, kw)
        per_in = kept.sum(axis=0).astype(np.int64)           # (Cin, kh, kw)
        rows, cols = vr.sum(axis=0), vc.sum(axis=0)          # how many outputs use each tap
        syn = int(np.einsum("okl,k,l->", per_out, rows, cols))
        dense = int(o * ci * rows.sum() * cols.sum())
        fan_in = int(np.einsum("yk,okl,xl->oyx", vr, per_out, vc).max())
        ur = source_taps(src[1], dst[1], kh, s.stride, s.padding)
        uc = source_taps(src[2], dst[2], kw, s.stride, s.padding)
        fan_out = int(np.einsum("yk,ckl,xl->cyx", ur, per_in, uc).max())
        potential = ci * kh * kw
    index_bits = max(1, math.ceil(math.log2(potential))) if potential > 1 else 1
    dense_bits = dense * s.weight_bits
    sparse_bits = syn * (s.weight_bits + index_bits)
    enc = "sparse" if sparse_bits < dense_bits else "dense"
    return SparseStats(enc, nnz=int(kept.sum()), synapses=syn, dense_synapses=dense, fan_in_max=fan_in,
                       fan_out_max=fan_out, index_bits=index_bits, dense_bits=dense_bits, sparse_bits=sparse_bits)


def sparsify(graph: Graph, profile: object = None) -> Graph:
    """Attach SparseStats (and the chosen encoding) to every synapse group."""
    if graph.stage != "integer":
        raise IRError("sparsify: run quantize first (weight bits are needed)")
    return graph.replace(synapses=tuple(replace(s, stats=group_stats(graph, s)) for s in graph.synapses))
