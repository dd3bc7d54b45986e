"""Compiled (numba) kernels of the emulator's fast path.

`lif_gather`: one population for a batch. For each block of ~500 neurons (whole pixels) of a
sample and each step, it sums what every incoming group sent (`terms.Term`s, read where their
kernels wrote them) into a buffer that stays in L1 with the block's state, then runs Lava's
bit-accurate LIF on it (the same integer operations as `lsnn.contract.chip.lif_step`: int32
wraps, one-sided 24-bit current wrap, 24-bit v clip; or, where `lif_fast.fast_path_ok` proves it
exact, the vectorised no-decay form), and counts the spikes per sample, step and neuron as it
writes them. One read of each input and one write of the spikes per neuron-step. Parallel over
samples (prange); compiled on first use and cached on disk.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from lsnn.contract.chip import ACT_SHIFT, DECAY_SHIFT, DECAY_UNITY, MAX_UV, V_MAX
from lsnn.runtime.emulator.terms import KINDS

_ACT_MUL = float(1 << ACT_SHIFT)
_BLOCK = 512       # neurons per LIF block (state in L1 across the T steps; ~2 % faster than 1024)


@njit(inline="always")
def _wrap32(x: int) -> int:
    """Two's-complement wrap of an integer to int32."""
    return ((x + 2147483648) & 0xFFFFFFFF) - 2147483648


@njit(inline="always")
def _add_term(acc, src, meta, k, r, p0, p1, C):
    """acc [(p1-p0)*C] (int32, wraps) += (pixels p0..p1 of term k's row r - zero) * scale, into
    its channels. src: the term's flat array; meta: its layout (`terms.pack`). Indexing slices
    by loop counters (never by computed offsets) lets the loops vectorise."""
    # int32 operands: with the int32 store the compiler narrows the whole sum to 32-bit lanes
    # (the same wrapping result as in int64, at twice the lanes and without 64-bit multiplies)
    offset, scale, zero = meta[k, 2], np.int32(meta[k, 3]), np.int32(meta[k, 4])
    sr, sh, sw, W, ch = meta[k, 6], meta[k, 7], meta[k, 8], meta[k, 9], meta[k, 10]
    s0 = r * sr
    if sw == ch and ch == C and sh == W * C:    # whole pixels, contiguous: one run
        n = (p1 - p0) * C
        b0 = s0 + p0 * C
        seg = src[b0:b0 + n]
        if scale == 1:                          # every conv term: no multiply
            for j in range(n):
                acc[j] += np.int32(seg[j]) - zero
        else:                                   # skips: spikes x weight (ufuncs keep int32)
            for j in range(n):
                acc[j] += np.multiply(np.subtract(np.int32(seg[j]), zero), scale)
        return
    for p in range(p0, p1):
        h = p // W
        w = p - h * W
        a0 = (p - p0) * C + offset
        b0 = s0 + h * sh + w * sw
        dst = acc[a0:a0 + ch]
        seg = src[b0:b0 + ch]
        for c in range(ch):
            dst[c] += np.multiply(np.subtract(np.int32(seg[c]), zero), scale)


@njit(inline="always")
def _gather(acc, f32s, u8s, i32s, meta, t, m, B, p0, p1, C):
    """acc = the input of pixels p0..p1 of sample m at step t: the sum of every term."""
    for j in range(acc.shape[0]):
        acc[j] = 0
    for k in range(meta.shape[0]):
        kind, i = meta[k, 0], meta[k, 1]
        r = m if meta[k, 5] else t * B + m
        if kind == 0:
            _add_term(acc, f32s[i], meta, k, r, p0, p1, C)
        elif kind == 1:
            _add_term(acc, u8s[i], meta, k, r, p0, p1, C)
        else:
            _add_term(acc, i32s[i], meta, k, r, p0, p1, C)


@njit(inline="always")
def _step_general(acc, u, v, b, cur_factor, volt_factor, vth_eff, st, count):
    """One step of Lava's bit-accurate LIF on a row; returns its spikes."""
    n = 0
    for j in range(acc.shape[0]):
        if cur_factor == 0:
            dc = np.int64(0)
        else:
            y = u[j] * cur_factor
            r = np.abs(y) >> DECAY_SHIFT
            dc = r if y >= 0 else -r
        dc = _wrap32(dc + _wrap32(np.int64(acc[j]) << ACT_SHIFT))
        dc = dc - 2 * MAX_UV if dc > MAX_UV else dc
        dc = dc + 2 * MAX_UV if dc <= -MAX_UV else dc
        u[j] = dc
        if volt_factor == DECAY_UNITY:
            dvv = v[j]
        else:
            y = v[j] * volt_factor
            r = np.abs(y) >> DECAY_SHIFT
            dvv = r if y >= 0 else -r
        upd = _wrap32(_wrap32(dvv + dc) + b[j])
        upd = min(max(upd, -V_MAX), V_MAX)
        fire = upd > vth_eff
        st[j] = 1 if fire else 0
        count[j] += fire
        n += fire
        v[j] = 0 if fire else upd
    return n


@njit(inline="always")
def _step_nodecay(acc, v, b, vf, vth, lim, st, count):
    """One step of the exact no-decay form (`lif_fast.lif_step_fast`) on a row, v in float64
    (integers below 2^26: exact), branch-free so it vectorises; returns its spikes."""
    n = 0
    for j in range(acc.shape[0]):
        x = np.trunc(v[j] * vf) + acc[j] * _ACT_MUL + b[j]
        x = min(max(x, -lim), lim)
        fire = x > vth
        st[j] = fire
        count[j] += fire
        n += fire
        v[j] = 0.0 if fire else x
    return n


@njit(parallel=True, cache=True, nogil=True)
def lif_gather(f32s, u8s, i32s, meta, du, dv, bias, vth_eff, nodecay, spikes, trace, want_trace,
               per_step_sample, per_neuron, threads):  # pragma: no cover - compiled
    """T LIF steps from u = v = 0 of one population for B samples, on the sum of its terms.

    f32s / u8s / i32s: tuples of `SLOTS` flat arrays by dtype (the terms', then padding), meta
    [K, 11] int64 (`terms.pack`); bias [C] int32 (bias_mant << bias_exp); nodecay:
    `fast_path_ok` holds; spikes [T, B, N] uint8 (N = H*W*C neurons per sample, written); trace [T, B, N] int32 (v
    after each step, written if want_trace); per_step_sample [B, T] int64 (written); per_neuron
    [N] int64 (added to); threads: numba's threads for this call (one inside the emulator's
    worker threads). A block of whole pixels at a time, its state and input in L1 across the
    T steps (measured ~10 % faster overall than a whole sample at a time, whose state lives in
    L2).
    """
    T, B, N = spikes.shape
    C = bias.shape[0]
    cur_factor = DECAY_UNITY - (du + 1)
    volt_factor = DECAY_UNITY - dv
    vf = volt_factor / float(DECAY_UNITY)
    vth = np.float64(vth_eff)
    lim = np.float64(V_MAX)
    bi = np.empty(N, np.int64)
    for j in range(N):
        bi[j] = bias[j % C]
    bf = bi.astype(np.float64)
    P = max(1, min(threads, B))
    npix = N // C
    bp = max(1, _BLOCK // C)                      # pixels per block: its state stays in L1
    L = bp * C
    counts = np.zeros((P, N), np.int64)
    for q in prange(P):
        acc_b = np.empty(L, np.int32)
        u_b = np.empty(L, np.int64)
        v_b = np.empty(L, np.int64)
        vd_b = np.empty(L, np.float64)
        for m in range(q * B // P, (q + 1) * B // P):
            for t in range(T):
                per_step_sample[m, t] = 0
            for p0 in range(0, npix, bp):
                p1 = min(npix, p0 + bp)
                n0 = p0 * C
                n = (p1 - p0) * C
                acc, u, v, vd = acc_b[:n], u_b[:n], v_b[:n], vd_b[:n]
                count = counts[q, n0:n0 + n]
                for j in range(n):
                    u[j] = 0
                    v[j] = 0
                    vd[j] = 0.0
                for t in range(T):
                    _gather(acc, f32s, u8s, i32s, meta, t, m, B, p0, p1, C)
                    st = spikes[t, m, n0:n0 + n]
                    if nodecay:
                        per_step_sample[m, t] += _step_nodecay(acc, vd, bf[n0:n0 + n], vf, vth, lim, st, count)
                    else:
                        per_step_sample[m, t] += _step_general(acc, u, v, bi[n0:n0 + n], cur_factor, volt_factor,
                                                               vth_eff, st, count)
                    if want_trace:
                        tr = trace[t, m, n0:n0 + n]
                        for j in range(n):
                            tr[j] = np.int32(vd[j]) if nodecay else np.int32(v[j])
    for q in range(P):
        for j in range(N):
            per_neuron[j] += counts[q, j]


SLOTS = 8                  # terms of one dtype a call takes (`terms.pack` gathers the rest first)
_PAD = tuple(np.zeros(1, dt) for dt in KINDS)     # one per tuple, in `lif_gather`'s order


def gather_lif(by_kind: list[list[np.ndarray]], meta: np.ndarray, du: int, dv: int, bias: np.ndarray,
               vth_eff: int, nodecay: bool, spikes: np.ndarray, trace: np.ndarray, want_trace: bool,
               per_step_sample: np.ndarray, per_neuron: np.ndarray) -> None:
    """`lif_gather` on terms packed by `terms.pack` (at most `SLOTS` per dtype), on this
    thread's numba threads. The arrays go in as fixed-length tuples (padded): one compiled
    signature, and a few microseconds per call where typed lists cost ~0.2 ms."""
    from numba import get_num_threads

    tuples = [tuple(arrays) + (pad,) * (SLOTS - len(arrays)) for arrays, pad in zip(by_kind, _PAD)]
    lif_gather(*tuples, meta, du, dv, bias, vth_eff, nodecay, spikes, trace, want_trace, per_step_sample,
               per_neuron, get_num_threads())
