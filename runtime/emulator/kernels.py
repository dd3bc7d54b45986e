"""Compiled (numba) kernels of the emulator's fast path.

`lif_run`: Lava's bit-accurate LIF (the same integer operations as `lsnn.contract.chip.lif_step`, int32
wraps, one-sided 24-bit current wrap, 24-bit v clip), a block of neurons at a time with its state
in L1 across the T steps: one read of the input and one write of the spikes per neuron-step,
where the NumPy form makes ~10 passes over memory. `lif_run_nodecay`: the vectorised form for
populations where `fast_path_ok` proves it exact. Both count the spikes per step, sample and
neuron as they write them. `put_scaled`: a group's output into its destination's input. Parallel
over blocks of neurons (prange); compiled on first use and cached on disk.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from lsnn.contract.chip import ACT_SHIFT, DECAY_SHIFT, DECAY_UNITY, MAX_UV, V_MAX

_ACT_MUL = float(1 << ACT_SHIFT)


@njit(inline="always")
def _wrap32(x: int) -> int:
    """Two's-complement wrap of an integer to int32."""
    return ((x + 2147483648) & 0xFFFFFFFF) - 2147483648


_BLOCK = 1024      # neurons per task: their state stays in L1 across the T steps


@njit(inline="always")
def _bias_tile(bias, channels):
    """(block, tile): a block length that is a multiple of `channels` (so that every block starts
    at channel 0) and the per-neuron bias of one block (channels-last: channel = n % channels).
    Computed once per call: an integer modulo per neuron cost more than the LIF update itself."""
    block = max(channels, (_BLOCK // channels) * channels)
    b = np.empty(block, bias.dtype)
    for j in range(block):
        b[j] = bias[j % channels]
    return block, b


@njit(inline="always")
def _totals(part, per_step_sample):
    """per_step_sample [B, T] = the sum over blocks of part [blocks, B, T]."""
    nblk, B, T = part.shape
    for b in range(B):
        for t in range(T):
            tot = 0
            for k in range(nblk):
                tot += part[k, b, t]
            per_step_sample[b, t] = tot


@njit(parallel=True, cache=True, nogil=True)
def lif_run(a, channels, du, dv, bias, vth_eff, spikes, trace, want_trace,
            per_step_sample, per_neuron):  # pragma: no cover - compiled
    """T steps of Lava's bit-accurate LIF from u = v = 0 for every neuron of B samples, and the
    spike totals.

    a [T, B, N] int32 or int16 (the summed synaptic input, N neurons per sample channels-last,
    channel = n % channels), bias [channels] int32 (bias_mant << bias_exp), spikes [T, B, N]
    uint8 (written), trace [T, B, N] int32 (v after each step, written if want_trace),
    per_step_sample [B, T] int64 (spikes per sample and step, written), per_neuron [N] int64
    (spikes per neuron over B and T, added to). Blocks of neurons in parallel, every sample of a
    block in turn (so a block owns its per-neuron totals); inside a block the update is
    branch-free over neurons so it vectorises; the totals are counted while the spikes are
    written instead of in another pass.
    """
    T, B, N = a.shape
    cur_factor = DECAY_UNITY - (du + 1)
    volt_factor = DECAY_UNITY - dv
    block, b = _bias_tile(bias.astype(np.int64), channels)
    nblk = (N + block - 1) // block
    part = np.zeros((nblk, B, T), np.int64)
    for blk in prange(nblk):
        n0 = blk * block
        L = min(N, n0 + block) - n0
        u = np.empty(L, np.int64)
        v = np.empty(L, np.int64)
        acc = np.zeros(L, np.int64)
        for m in range(B):
            u[:] = 0
            v[:] = 0
            for t in range(T):
                at = a[t, m, n0:n0 + L]
                st = spikes[t, m, n0:n0 + L]
                cnt = 0
                for j in range(L):
                    if cur_factor == 0:
                        dc = np.int64(0)
                    else:
                        y = u[j] * cur_factor
                        r = np.abs(y) >> DECAY_SHIFT
                        dc = r if y >= 0 else -r
                    dc = _wrap32(dc + _wrap32(np.int64(at[j]) << ACT_SHIFT))
                    dc = dc - 2 * MAX_UV if dc > MAX_UV else dc
                    dc = dc + 2 * MAX_UV if dc <= -MAX_UV else dc
                    u[j] = dc
                    if dv == 0:
                        dvv = v[j]
                    else:
                        y = v[j] * volt_factor
                        r = np.abs(y) >> DECAY_SHIFT
                        dvv = r if y >= 0 else -r
                    upd = _wrap32(_wrap32(dvv + dc) + b[j])
                    upd = min(max(upd, -V_MAX), V_MAX)
                    fire = upd > vth_eff
                    st[j] = 1 if fire else 0
                    acc[j] += fire
                    cnt += fire
                    v[j] = 0 if fire else upd
                part[blk, m, t] = cnt
                if want_trace:
                    trace[t, m, n0:n0 + L] = v
        per_neuron[n0:n0 + L] += acc
    _totals(part, per_step_sample)


@njit(parallel=True, cache=True, nogil=True)
def lif_run_nodecay(a, channels, dv, bias, vth_eff, spikes, trace, want_trace,
                    per_step_sample, per_neuron):  # pragma: no cover - compiled
    """`lif_run` where `lif_fast.fast_path_ok` holds (du = 4095 and no wrap can occur): then
    u = a << 6 and v' = trunc(v * (4096 - dv) / 4096) + (a << 6) + bias, clipped, exactly as
    `lif_fast.lif_step_fast`; v in float64 (integers below 2^26: exact), which vectorises
    (~7x faster than the general integer form). Same arguments as `lif_run`."""
    T, B, N = a.shape
    vf = (DECAY_UNITY - dv) / float(DECAY_UNITY)
    vth = np.float64(vth_eff)
    lim = np.float64(V_MAX)
    block, b = _bias_tile(bias.astype(np.float64), channels)
    nblk = (N + block - 1) // block
    part = np.zeros((nblk, B, T), np.int64)
    for blk in prange(nblk):
        n0 = blk * block
        L = min(N, n0 + block) - n0
        v = np.empty(L, np.float64)
        acc = np.zeros(L, np.int64)
        for m in range(B):
            v[:] = 0.0
            for t in range(T):
                at = a[t, m, n0:n0 + L]
                st = spikes[t, m, n0:n0 + L]
                cnt = 0
                for j in range(L):
                    x = np.trunc(v[j] * vf) + at[j] * _ACT_MUL + b[j]
                    x = min(max(x, -lim), lim)
                    fire = x > vth
                    st[j] = fire
                    acc[j] += fire
                    cnt += fire
                    v[j] = 0.0 if fire else x
                part[blk, m, t] = cnt
                if want_trace:
                    tr = trace[t, m, n0:n0 + L]
                    for j in range(L):
                        tr[j] = np.int32(v[j])
        per_neuron[n0:n0 + L] += acc
    _totals(part, per_step_sample)


@njit(parallel=True, cache=True, nogil=True)
def put_scaled(dst, src, scale, zero, accumulate):  # pragma: no cover - compiled
    """dst [R, M, H, W, C] (int32, any strides) = (or += if `accumulate`) (src [M, H, W, C] -
    zero) * scale for every r, src being float32 integers (a conv's output), uint8 integers + 128
    (an int8 conv's small outputs) or uint8 spikes (an identity group's): a group's output into
    its destination's input, converted, scaled and stored in one pass (the caller's bounds keep
    every value exact and within int32)."""
    R, M, H, W, C = dst.shape
    for m in prange(M):
        for r in range(R):
            for h in range(H):
                for w in range(W):
                    if accumulate:
                        for c in range(C):
                            dst[r, m, h, w, c] += (np.int32(src[m, h, w, c]) - zero) * scale
                    else:
                        for c in range(C):
                            dst[r, m, h, w, c] = (np.int32(src[m, h, w, c]) - zero) * scale
