"""The chip's integer semantics: the one place for its fixed-point constants and the reference
integer LIF step every stage is held to (Lava's `PyLifModelBitAcc` / `PyLifResetModelBitAcc`,
lava-nc 0.10, reproduced with the same operations on the same dtypes, so overflow and rounding
behave identically, on arrays with any leading batch dimensions; docs/SEMANTICS.md section 3):

    a      = int32 sum of all incoming activations (wraps like Lava's InPort sum)
    u      = int32(sign(x) * (|x| >> 12)),  x = int64(u) * (4096 - (du + 1))      (du = 4095: u = 0)
    u      = u + (a << 6)   in int32, then Lava's one-sided 24-bit wrap
    v      = int32(sign(y) * (|y| >> 12)),  y = int64(v) * (4096 - dv)
    v      = clip(v + u + (int32(int16(bias_mant)) << bias_exp), -(2^23 - 1), 2^23 - 1)
    spike  = v > vth << 6;   v = 0 where spike

`LIFReset` zeroes u and v before the update at its reset steps; `reset_state` does that.
NumPy only: the searcher (PyTorch), the compiler and the runtime all import these numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATE_BITS = 24                         # u and v are 24-bit signed
MAX_UV = 2 ** (STATE_BITS - 1)          # Lava's max_uv_val: the current wraps at +-2^23
V_MAX = MAX_UV - 1                      # v is clipped to +-(2^23 - 1); a readout's "never fires" threshold
DECAY_SHIFT = 12
DECAY_UNITY = 1 << DECAY_SHIFT          # du, dv are in 1/4096
ACT_SHIFT = 6                           # the current adds a_in << 6
VTH_SHIFT = 6                           # spike iff v > vth << 6
ACC_LIMIT = MAX_UV >> ACT_SHIFT         # 2^17: an input sum |a| this large makes a << 6 reach the wrap
DEFAULT_DU = DECAY_UNITY - 1            # 4095: the current does not persist (passes straight through)
DEFAULT_BIAS_EXP = 6                    # bias_mant << 6 puts the bias in the potential's units
BIAS_MANT_MAX = 4095                    # 13-bit signed bias mantissa: [-4096, 4095]


def dv_for_tau(tau: float) -> int:
    """The voltage decay dv (in 1/4096) of a LIF with leak factor tau: v <- trunc(v * (4096 - dv) / 4096)."""
    return int(round(DECAY_UNITY * (1.0 - tau)))


DEFAULT_DV = dv_for_tau(0.2)            # 3277: the paper's tau = 0.2


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
    np.clip(updated, -V_MAX, V_MAX, out=updated)
    spikes = updated > p.vth_eff
    updated[spikes] = 0
    v[...] = updated
    return spikes


def reset_state(u: np.ndarray, v: np.ndarray) -> None:
    """LIFReset's reset: u = v = 0 (before the step's update)."""
    u[...] = 0
    v[...] = 0
