"""Exact fast forms of the chip's LIF (`lsnn.contract.chip.lif_step`) for the emulator.

Where the bounds of a population's input prove that the current cannot decay or wrap
(du = 4095, |a << 6| < 2^23), u = a << 6 exactly and the voltage update can run in float64
without temporaries; `fast_path_ok` is that proof, and tests hold both forms to `lif_step`.
"""
from __future__ import annotations

import numpy as np

from lsnn.contract.chip import ACT_SHIFT, DECAY_UNITY, MAX_UV, V_MAX, LifParams


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
    np.clip(upd, -V_MAX, V_MAX, out=upd)
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
        np.clip(v, -V_MAX, V_MAX, out=v)
        spk = out[t].view(np.bool_)
        np.greater(v, vth, out=spk)
        np.copyto(v, 0.0, where=spk)
        if trace is not None:
            trace[t] = v
    return v.astype(np.int32)
