"""Lava's bit-accurate LIF (`PyLifModelBitAcc` / `PyLifResetModelBitAcc`, lava-nc 0.10) in NumPy.

The same operations on the same dtypes, so overflow and rounding behave identically, but on
arrays with any leading batch dimensions (docs/SEMANTICS.md section 3):

    a      = int32 sum of all incoming activations (wraps like Lava's InPort sum)
    u      = int32(sign(x) * (|x| >> 12)),  x = int64(u) * (4096 - (du + 1))      (du = 4095: u = 0)
    u      = u + (a << 6)   in int32, then Lava's one-sided 24-bit wrap
    v      = int32(sign(y) * (|y| >> 12)),  y = int64(v) * (4096 - dv)
    v      = clip(v + u + (int32(int16(bias_mant)) << bias_exp), -(2^23 - 1), 2^23 - 1)
    spike  = v > vth << 6;   v = 0 where spike

`LIFReset` zeroes u and v before the update at its reset steps; `reset_state` does that.
No torch, no Lava.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATE_BITS = 24
MAX_UV = 2 ** (STATE_BITS - 1)          # Lava's max_uv_val
V_LIMIT = MAX_UV - 1                    # v is clipped to +-(2^23 - 1)
DECAY_SHIFT = 12
DECAY_UNITY = 1 << DECAY_SHIFT
ACT_SHIFT = 6
VTH_SHIFT = 6


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of an integer array to int32 (what an int32 channel does)."""
    return np.asarray(x).astype(np.int32)


def signed_clamp(x: np.ndarray, bits: int) -> np.ndarray:
    """lava.proc.conv.utils.signed_clamp: wrap to a signed `bits`-bit integer (Conv's output)."""
    base = 1 << bits
    return (x + base // 2) % base - base // 2


@dataclass(frozen=True)
class LifParams:
    """The per-population constants of the fixed-point LIF, as Lava's model holds them."""

    du: int
    dv: int
    bias: np.ndarray          # int32 effective bias (bias_mant << bias_exp), broadcastable to state
    vth_eff: int              # vth << 6 (Python int: Lava computes it as a NumPy int64)

    @classmethod
    def make(cls, du: int, dv: int, bias_mant: np.ndarray, bias_exp: int, vth: int,
             channel_axis_shape: tuple[int, ...] = ()) -> "LifParams":
        """Build from the IR's numbers. `bias_mant` per channel is reshaped to `channel_axis_shape`
        (e.g. (C, 1, 1) for CHW state) after Lava's int16 storage cast and int32 shift."""
        mant16 = np.asarray(bias_mant).astype(np.int64).astype(np.int16)   # Lava stores int16
        b = mant16.astype(np.int32)
        e = int(bias_exp)
        bias = np.left_shift(b, e) if e >= 0 else np.right_shift(b, -e)
        if channel_axis_shape:
            bias = bias.reshape(channel_axis_shape)
        return cls(int(du), int(dv), bias.astype(np.int32), int(vth) << VTH_SHIFT)


def _decay(x: np.ndarray, factor: int) -> np.ndarray:
    y = x.astype(np.int64) * factor
    return (np.sign(y) * np.right_shift(np.abs(y), DECAY_SHIFT)).astype(np.int32)


def lif_step(u: np.ndarray, v: np.ndarray, a_in: np.ndarray, p: LifParams) -> np.ndarray:
    """One step in place on int32 `u`, `v`; `a_in` int32 (already summed). Returns bool spikes."""
    if p.du + 1 == DECAY_UNITY:
        decayed_curr = np.zeros(u.shape, dtype=np.int32)
    else:
        decayed_curr = _decay(u, DECAY_UNITY - (p.du + 1))
    decayed_curr += np.left_shift(a_in.astype(np.int32, copy=False), ACT_SHIFT)
    wrapped = np.where(decayed_curr > MAX_UV, decayed_curr - 2 * MAX_UV, decayed_curr)
    wrapped = np.where(wrapped <= -MAX_UV, decayed_curr + 2 * MAX_UV, wrapped)
    u[...] = wrapped
    if p.dv == 0:
        decayed_volt = v.copy()
    else:
        decayed_volt = _decay(v, DECAY_UNITY - p.dv)
    updated = decayed_volt + u + p.bias
    np.clip(updated, -V_LIMIT, V_LIMIT, out=updated)
    spikes = updated > p.vth_eff
    updated[spikes] = 0
    v[...] = updated
    return spikes


def fast_path_ok(p: LifParams, a_bound: int) -> bool:
    """True if `lif_step_fast` is exact for inputs |a_in| <= a_bound: the current does not decay
    (du = 4095, so u = a << 6) and never reaches Lava's 24-bit wrap, and v + u + bias fits int32."""
    bias_max = int(np.abs(p.bias).max()) if np.size(p.bias) else 0
    return (p.du + 1 == DECAY_UNITY and (a_bound << ACT_SHIFT) < MAX_UV
            and MAX_UV + (a_bound << ACT_SHIFT) + bias_max < 2 ** 31)


def lif_step_fast(v: np.ndarray, a_in: np.ndarray, p: LifParams) -> np.ndarray:
    """`lif_step` for du = 4095 and inputs within `fast_path_ok`'s bound (then u = a << 6 exactly).

    The voltage decay sign(y) * (|y| >> 12), y = v * (4096 - dv), equals trunc(v * (4096 - dv) / 4096)
    computed in float64: the product has at most 36 significant bits and the division is by a
    power of two, so it is exact. `u` is not kept (it equals a << 6 after every step).
    """
    if p.dv == 0:
        upd = v + np.left_shift(a_in, ACT_SHIFT)
    else:
        upd = np.trunc(v * ((DECAY_UNITY - p.dv) / DECAY_UNITY)).astype(np.int32)
        upd += np.left_shift(a_in, ACT_SHIFT)
    upd += p.bias
    np.clip(upd, -V_LIMIT, V_LIMIT, out=upd)
    spikes = upd > p.vth_eff
    upd[spikes] = 0
    v[...] = upd
    return spikes


def lif_run_fast(a: np.ndarray, p: LifParams, out: np.ndarray, trace: "np.ndarray | None" = None) -> np.ndarray:
    """T steps of `lif_step_fast` from v = 0 over a [T, ...] (int32, modified: it becomes
    (a << 6) + bias); spikes go to `out` [T, ...] (uint8); returns the final v (int32).

    Same arithmetic as `lif_step_fast`, with v held in float64 (every value is an integer below
    2^26, so float64 is exact), in place and without temporaries: ~6 memory passes per step.
    `trace` [T, ...] (int32) receives v after every step if given.
    """
    np.left_shift(a, ACT_SHIFT, out=a)
    a += p.bias
    v = np.zeros(a.shape[1:], dtype=np.float64)
    f = (DECAY_UNITY - p.dv) / DECAY_UNITY
    vth = float(p.vth_eff)
    for t in range(a.shape[0]):
        if p.dv:
            np.multiply(v, f, out=v)
            np.trunc(v, out=v)
        v += a[t]
        np.clip(v, -V_LIMIT, V_LIMIT, out=v)
        spk = out[t].view(np.bool_)
        np.greater(v, vth, out=spk)
        np.copyto(v, 0.0, where=spk)
        if trace is not None:
            trace[t] = v
    return v.astype(np.int32)


def reset_state(u: np.ndarray, v: np.ndarray) -> None:
    """LIFReset's reset: u = v = 0 (before the step's update)."""
    u[...] = 0
    v[...] = 0
