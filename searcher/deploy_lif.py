"""The LIF forms DeployNet trains with: Eq. 1 as a fused autograd function (float), and Lava's
fixed-point LIF and readout run differentiably on the integer accumulator (lif_mode "lava")."""
from __future__ import annotations

import math

import torch

from lsnn.searcher.quant import trunc_ste

_CL = torch.channels_last


class _FusedLIFFn(torch.autograd.Function):
    """neuron.LIF over all steps of a channels_last [N, C, H, W] current (N = T*B, or B fed at every
    step when `constant`), bit-identical forward (`u_t = tau * u_{t-1} * (1 - y_{t-1}) + I_t`,
    `y_t = [u_t > vth]`), saving only u. Backward = autograd of neuron.lif_step (BPTT through the
    reset too): `a_t = dL/dy_t - tau u_t g_{t+1}`, `g_t = a_t sg(u_t) + tau (1 - y_t) g_{t+1}`,
    `dL/dI_t = g_t`, `dL/dvth = -sum_t a_t sg(u_t)`, sg = neuron.dspike_grad."""

    @staticmethod
    def forward(ctx, cur: torch.Tensor, vth: torch.Tensor, T: int, tau: float,  # type: ignore[override]
                temperature: float, constant: bool) -> torch.Tensor:
        cur = cur.contiguous(memory_format=_CL)
        n, c, h, w = cur.shape
        I = cur.permute(0, 2, 3, 1).reshape(1 if constant else T, -1)          # NHWC storage: a view
        out = torch.empty((n * T if constant else n, c, h, w), dtype=cur.dtype, device=cur.device,
                          memory_format=_CL)
        Y = out.permute(0, 2, 3, 1).reshape(T, -1)
        U = torch.empty((T, I.shape[1]), dtype=cur.dtype, device=cur.device)
        th = vth.detach()
        U[0].copy_(I[0])
        for t in range(1, T):
            prev = U[t - 1]
            # (tau * u) * (1 - y) + I with y in {0, 1}: the same roundings as neuron.lif_step
            torch.add(torch.where(prev > th, 0.0, prev).mul_(tau), I[0 if constant else t], out=U[t])
        Y.copy_(U > th)
        ctx.save_for_backward(U, vth)
        ctx.meta = (T, tau, temperature, constant, (n, c, h, w))
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        # g_t = a_t sg_t + tau (1 - y_t) g_{t+1} = P_t + Q_t g_{t+1} with P = G sg and
        # Q = tau (1 - y) - tau u sg, all batched over the steps: one addcmul per step.
        U, vth = ctx.saved_tensors
        T, tau, b, constant, (n, c, h, w) = ctx.meta
        G = grad_out.contiguous(memory_format=_CL).permute(0, 2, 3, 1).reshape(T, -1)
        th = vth.detach()
        k = b / (2.0 * math.tanh(b / 2.0))
        z = U - th
        sg = torch.tanh(z * b)
        sg.mul_(sg).neg_().add_(1.0).mul_(k)
        sg.masked_fill_(z.abs_() >= 0.5, 0.0)                    # Dspike window |u - vth| < 1/2
        del z
        P = G * sg
        a_sg = (U * tau).mul_(sg)                                # tau u sg
        del sg
        Q = torch.full_like(U, tau).masked_fill_(U > th, 0.0).sub_(a_sg)
        gI = torch.empty_like(U)
        gI[T - 1].copy_(P[T - 1])
        for t in range(T - 2, -1, -1):
            torch.addcmul(P[t], Q[t], gI[t + 1], out=gI[t])
        gvth = None
        if ctx.needs_input_grad[1]:
            gvth = (a_sg[:-1] * gI[1:]).sum() - P.sum()
            gvth = gvth.reshape(vth.shape)
        if constant:
            gI = gI.sum(0)
        grad_cur = gI.reshape(n, h, w, c).permute(0, 3, 1, 2)                 # channels_last strides
        return grad_cur, gvth, None, None, None, None


def _fused_lif(cur: torch.Tensor, vth: torch.Tensor, T: int, tau: float, temperature: float,
               constant: bool = False) -> torch.Tensor:
    """Spikes [T*B, C, H, W] (channels_last) of Eq. 1; see _FusedLIFFn."""
    return _FusedLIFFn.apply(cur, vth, int(T), float(tau), float(temperature), bool(constant))


LAVA_DV = 3277            # round(4096 * (1 - 0.2)): Lava's v decay, v <- trunc(v * (4096 - dv) / 4096)
LAVA_ACT_SHIFT = 6        # a_in << 6, bias << 6, vth << 6
LAVA_V_MAX = 2 ** 23 - 1  # v is clipped to +-(2^23 - 1)
LAVA_ACT_SHIFT_MUL = float(1 << LAVA_ACT_SHIFT)


def lava_lif(units: torch.Tensor, scale: torch.Tensor, vth_int: torch.Tensor,
             temperature: float = 3.0, dv: int = LAVA_DV) -> torch.Tensor:
    """Lava's fixed-point LIF (du = 4095) run on the integer accumulator, differentiably.

    `units` [T, ...] = a_t + bias_int (integers in the deployed path). In units of s_P / 64:
    `v = trunc(v * (4096 - dv) / 4096) + 64 * units_t`, clipped to +-(2^23 - 1), spike iff
    `v > 64 * vth_int`, reset to 0; bit-exact with `PyLifModelBitAcc` as long as the compiler's
    current `a << 6` does not wrap (|a| < 2^17). Float64 state (exact integers). Gradients:
    truncation straight-through, spike via the Dspike surrogate on `u = v * s_P / 64` against
    `Vth = s_P * vth_int` (the same window and slope as the float LIF).
    """
    from lsnn.searcher.neuron import spike

    factor = (4096 - int(dv)) / 4096.0                    # 819 / 4096: exact in float64
    s = scale.double()
    c = s / 64.0
    vth = vth_int.double() * s
    u_in = units.double() * 64.0
    v = None
    out = []
    for t in range(units.shape[0]):
        if v is None:
            v = u_in[t]
        else:
            v = trunc_ste(v * (1.0 - y) * factor) + u_in[t]
        v = torch.clamp(v, -LAVA_V_MAX, LAVA_V_MAX)
        y = spike(v * c, vth, temperature)
        out.append(y)
    return torch.stack(out, 0)


def lava_readout_increments(a: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The chip's readout on per-step synaptic input a [T, B, K] and bias [K] (integers, units of
    s_R), Lava's LIF with du = 4095, dv = 0: current u_t = a_t << 6 with Lava's one-sided 24-bit
    wrap, potential v_t = clip(v_{t-1} + u_t + 64 * bias, +-(2^23 - 1)). Returns the increments
    (v_t - v_{t-1}) / 64, so their sum over t is v_T / 64 and argmax is what Lava predicts,
    saturation included. Gradients go straight through the wrap and the clip (a saturated wrong
    class is still pushed down)."""
    m = LAVA_ACT_SHIFT_MUL
    half = float(2 ** 23)
    v = torch.zeros_like(a[0])
    out = []
    for t in range(a.shape[0]):
        u = m * a[t]
        u = u + ((u > half).double() * -2 * half + (u <= -half).double() * 2 * half).to(u.dtype).detach()
        raw = v + u + m * bias
        nv = raw + (torch.clamp(raw, -LAVA_V_MAX, LAVA_V_MAX) - raw).detach()
        out.append((nv - v) / m)
        v = nv
    return torch.stack(out, 0)
