"""The chip's integer LIF, run differentiably on the integer accumulator (retraining's "lava"
mode): the same numbers as `lsnn.contract.chip.lif_step` with du = 4095, in float64 (every value
is an integer below 2^53, so exact), with straight-through gradients and the Dspike surrogate.
`lava_lif_step` is the pure step; `lava_lif` loops it over T; `lava_readout_increments` is the
non-spiking readout with the chip's 24-bit current wrap and potential clip.
"""
from __future__ import annotations

import torch

from lsnn.contract.chip import ACT_SHIFT, DECAY_UNITY, DEFAULT_DV, MAX_UV, V_MAX
from lsnn.searcher.neuron.functional import DSPIKE_TEMPERATURE, spike
from lsnn.searcher.space.quant import clip_ste, trunc_ste

ACT_MUL = float(1 << ACT_SHIFT)     # a << 6 as a float64 multiply (exact)


def lava_lif_step(units_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None, c: torch.Tensor,
                  vth: torch.Tensor, factor: float, temperature: float = DSPIKE_TEMPERATURE
                  ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One step in units of s_P / 64: `v = trunc(v * factor) + 64 * units_t` (v reset to 0 after a
    spike), clipped to +-(2^23 - 1); spike iff `v > 64 * vth_int`, evaluated as `v * c > vth`
    with c = s_P / 64 and vth = s_P * vth_int so the surrogate sees trained units.
    `factor` = (4096 - dv) / 4096. Returns (spikes, (v, spikes))."""
    u_in = units_t.double() * ACT_MUL
    if state is None:
        v = u_in
    else:
        v_prev, y_prev = state
        v = trunc_ste(v_prev * (1.0 - y_prev) * factor) + u_in
    v = clip_ste(v, -V_MAX, V_MAX)
    y = spike(v * c, vth, temperature)
    return y, (v, y)


def lava_lif(units: torch.Tensor, scale: torch.Tensor, vth_int: torch.Tensor,
             temperature: float = DSPIKE_TEMPERATURE, dv: int = DEFAULT_DV) -> torch.Tensor:
    """Lava's fixed-point LIF (du = 4095) over `units` [T, ...] = a_t + bias_int (integers in the
    deployed path); bit-exact with `PyLifModelBitAcc` as long as the current `a << 6` does not
    wrap (|a| < 2^17). Gradients: truncation straight-through, spike via the Dspike surrogate on
    `u = v * s_P / 64` against `Vth = s_P * vth_int` (the same window and slope as the float LIF).
    """
    factor = (DECAY_UNITY - int(dv)) / float(DECAY_UNITY)      # 819 / 4096: exact in float64
    s = scale.double()
    c = s / ACT_MUL
    vth = vth_int.double() * s
    state = None
    out = []
    for t in range(units.shape[0]):
        y, state = lava_lif_step(units[t], state, c, vth, factor, temperature)
        out.append(y)
    return torch.stack(out, 0)


def lava_readout_increments(a: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The chip's readout on per-step synaptic input a [T, B, K] and bias [K] (integers, units of
    s_R), Lava's LIF with du = 4095, dv = 0: current u_t = a_t << 6 with Lava's one-sided 24-bit
    wrap, potential v_t = clip(v_{t-1} + u_t + 64 * bias, +-(2^23 - 1)). Returns the increments
    (v_t - v_{t-1}) / 64, so their sum over t is v_T / 64 and argmax is what Lava predicts,
    saturation included. Gradients go straight through the wrap and the clip (a saturated wrong
    class is still pushed down)."""
    m = ACT_MUL
    half = float(MAX_UV)
    v = torch.zeros_like(a[0])
    out = []
    for t in range(a.shape[0]):
        u = m * a[t]
        u = u + ((u > half).double() * -2 * half + (u <= -half).double() * 2 * half).to(u.dtype).detach()
        raw = v + u + m * bias
        nv = raw + (torch.clamp(raw, -V_MAX, V_MAX) - raw).detach()
        out.append((nv - v) / m)
        v = nv
    return torch.stack(out, 0)
