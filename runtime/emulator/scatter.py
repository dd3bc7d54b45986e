"""Event-driven synapse kernels: each spike adds its weights to the destinations it reaches.

A spiking net at 5-30 % rates with 80 % of its weights pruned does a small fraction of a dense
convolution's multiply-adds; these kernels do only the work of the spikes that happened (as the
chip does), where the dense path (`synapse_ops.FusedConv`) computes every output. For each
non-zero input value x at (m, h, w, ci), a conv adds x * W[kh, kw, ci, :] to the output pixel
(ho, wo) = ((h + p - kh) / s, (w + p - kw) / s) where that is an integer inside the map; a dense
group adds x * W[i, :] to the sample's outputs. Kernel taps whose weights are all zero for an
input channel are skipped. The sums go straight into the destination's int32 input buffer at
its channel offset: int32 addition wraps like Lava's InPort, and wrapping is associative, so the
result is the same integers as the dense path for every group that cannot hit the Conv process's
24-bit wrap (the others stay on the dense path). Parallel over samples (prange), compiled with
numba on first use and cached on disk.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


def conv_taps(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per input channel, the kernel taps that hold a non-zero weight, from w [O, Ci, KH, KW]:
    (taps [Ci, KH*KW, 2] int64 (kh, kw), count [Ci] int64); taps past count are unused."""
    o, ci, kh, kw = w.shape
    nz = np.any(w != 0, axis=0)                               # [Ci, KH, KW]
    taps = np.zeros((ci, kh * kw, 2), np.int64)
    count = np.zeros(ci, np.int64)
    for c in range(ci):
        pts = np.argwhere(nz[c])
        taps[c, :len(pts)] = pts
        count[c] = len(pts)
    return taps, count


@njit(parallel=True, cache=True, nogil=True)
def conv_scatter(x, wt, taps, count, stride, pad, out, offset):  # pragma: no cover - compiled
    """out[m, ho, wo, offset + o] += x[m, h, w, ci] * wt[kh, kw, ci, o] for every non-zero input.

    x [M, H, W, Ci] (uint8 spikes or small ints), wt [KH, KW, Ci, O] int32, taps / count from
    `conv_taps`, out [M, Ho, Wo, Cd] int32 (accumulated into, wrapping like int32).
    """
    M, H, W, Ci = x.shape
    Ho, Wo = out.shape[1], out.shape[2]
    O = wt.shape[3]
    for m in prange(M):
        for h in range(H):
            for w in range(W):
                for ci in range(Ci):
                    v = np.int32(x[m, h, w, ci])
                    if v == 0:
                        continue
                    for t in range(count[ci]):
                        kh = taps[ci, t, 0]
                        kw = taps[ci, t, 1]
                        hn = h + pad - kh
                        wn = w + pad - kw
                        if hn < 0 or wn < 0 or hn % stride != 0 or wn % stride != 0:
                            continue
                        ho = hn // stride
                        wo = wn // stride
                        if ho >= Ho or wo >= Wo:
                            continue
                        row = out[m, ho, wo]
                        wrow = wt[kh, kw, ci]
                        if v == 1:
                            for o in range(O):
                                row[offset + o] += wrow[o]
                        else:
                            for o in range(O):
                                row[offset + o] += v * wrow[o]


@njit(parallel=True, cache=True, nogil=True)
def dense_scatter(x, wt, out, offset):  # pragma: no cover - compiled
    """out[m, offset + o] += x[m, i] * wt[i, o] for every non-zero x[m, i].

    x [M, N] (uint8 spikes or small ints, N in the source's channels-last order), wt [N, O]
    int32, out [M, Cd] int32 (accumulated into, wrapping like int32).
    """
    M, N = x.shape
    O = wt.shape[1]
    for m in prange(M):
        row = out[m]
        for i in range(N):
            v = np.int32(x[m, i])
            if v == 0:
                continue
            wrow = wt[i]
            for o in range(O):
                row[offset + o] += v * wrow[o]


def consecutive_rows(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Per CSR row, True if its column indices are one consecutive run (a readout part's classes):
    `sparse_scatter` then adds the row's weights as one contiguous slice, which vectorises."""
    return np.array([bool(np.all(np.diff(indices[a:b]) == 1)) for a, b in zip(indptr[:-1], indptr[1:])], bool)


@njit(parallel=True, cache=True, nogil=True)
def sparse_scatter(x, indptr, indices, data, runs, out):  # pragma: no cover - compiled
    """out[m, indices[k]] += x[m, i] * data[k] for k in indptr[i]..indptr[i+1], every non-zero
    x[m, i]: a sparse matrix in CSR by input (x [M, N] uint8 spikes or small ints, data int32,
    runs [N] from `consecutive_rows`, out [M, O] int32, accumulated into, wrapping like int32)."""
    M, N = x.shape
    for m in prange(M):
        row = out[m]
        xm = x[m]
        for i in range(N):
            v = np.int32(xm[i])
            if v == 0:
                continue
            k0, k1 = indptr[i], indptr[i + 1]
            if runs[i] and k1 > k0:
                dst = row[indices[k0]:indices[k0] + k1 - k0]
                src = data[k0:k1]
                if v == 1:
                    for j in range(k1 - k0):
                        dst[j] += src[j]
                else:
                    for j in range(k1 - k0):
                        dst[j] += v * src[j]
            else:
                for k in range(k0, k1):
                    row[indices[k]] += v * data[k]
