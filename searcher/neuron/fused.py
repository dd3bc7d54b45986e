"""The fused LIF recurrences over all T steps, with one hand-written backward: Eq. 1 (float) and
the chip's integer LIF (the same gradients with tau = 819/4096).

The search cells and the deployable network's float mode both run it: it gives the same spikes
as `functional.lif_step` looped over T and the same gradients (BPTT through the reset, Dspike
surrogate, threshold gradient), but saves only u (optionally float16) and the spikes as bool
instead of ~5 tensors per step. Tensors are [T*B, ...] (time-major, channels_last for 4-D).
"""
from __future__ import annotations

import math

import torch

from lsnn.contract.chip import ACT_SHIFT, DECAY_UNITY, DEFAULT_DV, V_MAX
from lsnn.searcher.neuron.functional import LIFParams

CL = torch.channels_last
_ACT_MUL = float(1 << ACT_SHIFT)
_V_MAX = float(V_MAX)


def time_flat(x: torch.Tensor, T: int) -> torch.Tensor:
    """A [T, M] *view* of a dense [T*B, ...] tensor (contiguous or channels_last), step-major."""
    if x.is_contiguous():
        return x.view(T, -1)
    if x.dim() == 4 and x.is_contiguous(memory_format=CL):
        return x.permute(0, 2, 3, 1).reshape(T, -1)  # NHWC storage order: a view, no copy
    raise ValueError("time_flat needs a contiguous or channels_last tensor")


def dense_like(x: torch.Tensor) -> torch.Tensor:
    """x itself if time_flat can view it, else a channels_last (4-D) or contiguous copy."""
    if x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=CL)):
        return x
    return x.contiguous(memory_format=CL) if x.dim() == 4 else x.contiguous()


class _FusedLIFFn(torch.autograd.Function):
    """u_t = tau u_{t-1} (1 - y_{t-1}) + I_t, y_t = [u_t > vth]; I_t = current[t] (or the same
    current at every step when `constant`). Backward (BPTT through the reset as well):
        a_t  = dL/dy_t - tau u_t g_{t+1}
        g_t  = a_t sg(u_t) + tau (1 - y_t) g_{t+1}          (g_t = dL/du_t = dL/dI_t)
        dvth = -sum_t a_t sg(u_t)
    with sg the Dspike surrogate of neuron.dspike_grad, evaluated as 4c s (1 - s), s = sigmoid(2bz)
    (= c (1 - tanh(bz)^2)), kept where it exceeds its value at the window edge |z| = 1/2 (the same
    window, one fused op).
    The state is computed in float32 (or float64) whatever the current's dtype, exactly; the
    spikes come out in `out_dtype` (0/1 are exact in bfloat16, the dtype the convs may read).
    Saved: the spikes as bool (also returned, as the uint8 copy the consumers keep) and u in
    `save_dtype` (float16 halves the biggest saved tensor; the surrogate then sees u rounded to 11
    significant bits, the reset mask stays exact)."""

    @staticmethod
    def forward(ctx, current: torch.Tensor, vth: torch.Tensor, T: int, tau: float, temperature: float,
                constant: bool, save_dtype: torch.dtype | None, out_dtype: torch.dtype | None
                ):  # type: ignore[override]
        cur = dense_like(current)
        work = torch.promote_types(cur.dtype, torch.float32)
        cl = cur.dim() == 4 and not cur.is_contiguous()
        n = T * cur.shape[0] if constant else cur.shape[0]
        shape = (n,) + tuple(cur.shape[1:])
        out = torch.empty(shape, dtype=out_dtype or cur.dtype, device=cur.device,
                          memory_format=CL if cl else torch.contiguous_format)
        I = time_flat(cur, 1).expand(T, -1) if constant else time_flat(cur, T)
        m = I.shape[1]
        half = save_dtype is not None and save_dtype != work
        U = torch.empty((T, m), dtype=save_dtype if half else work, device=cur.device)
        Yb = torch.empty((T, m), dtype=torch.bool, device=cur.device)
        rows = [torch.empty(m, dtype=work, device=cur.device) for _ in range(2)] if half else None
        keep = torch.empty(m, dtype=work, device=cur.device) if T > 1 else None
        th = vth.detach().to(work)
        prev = None
        for t in range(T):
            row = rows[t % 2] if half else U[t]
            if prev is None:
                row.copy_(I[0])
            else:
                torch.le(prev, th, out=keep)                             # 1 - y_{t-1}
                torch.addcmul(I[t], prev, keep, value=tau, out=row)      # I_t + tau u_{t-1} (1 - y_{t-1})
            torch.gt(row, th, out=Yb[t])
            if half:
                U[t].copy_(row)
            prev = row
        time_flat(out, T).copy_(Yb.view(torch.uint8))        # (uint8 -> float is ~10x faster than bool)
        ctx.save_for_backward(U, Yb, vth)
        ctx.T, ctx.tau, ctx.temperature, ctx.constant = T, tau, temperature, constant
        ctx.cur_shape, ctx.cur_cl, ctx.dtype, ctx.work = cur.shape, cl, cur.dtype, work
        q = _unflatten(Yb.view(torch.uint8), shape, cl)
        ctx.mark_non_differentiable(q)
        return out, q

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor, _grad_q: torch.Tensor | None):  # type: ignore[override]
        return (*_lif_backward(ctx, grad_out), None, None, None, None, None, None)


def _lif_backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(dL/dcurrent, dL/dvth) of the recurrence saved in `ctx` (U, Yb, vth; T, tau, temperature,
    constant, cur_shape, cur_cl, dtype, work): the BPTT of _FusedLIFFn's docstring."""
    U, Yb, vth = ctx.saved_tensors
    T, tau, b, dtype = ctx.T, ctx.tau, ctx.temperature, ctx.work
    G = time_flat(grad_out.contiguous(memory_format=CL) if ctx.cur_cl else grad_out.contiguous(), T)
    th = vth.detach().to(dtype)
    c = b / (2.0 * math.tanh(b / 2.0))
    edge = c * (1.0 - math.tanh(b / 2.0) ** 2)                      # sg at |u - vth| = 1/2
    neg_2bth = -2.0 * b * th
    m = U.shape[1]
    Yu = Yb.view(torch.uint8)
    y_t = torch.empty(m, dtype=dtype, device=U.device) if T > 1 else None
    gI = torch.empty(m if ctx.constant else (T, m), dtype=dtype, device=U.device)
    gvth = torch.zeros((), dtype=dtype, device=U.device) if ctx.needs_input_grad[1] else None
    g_next: torch.Tensor | None = None
    for t in range(T - 1, -1, -1):
        u = U[t].to(dtype)
        # c (1 - tanh(b z)^2) = 4c s (1 - s), s = sigmoid(2 b z): the same Dspike, ~5x cheaper than tanh
        sg = torch.add(neg_2bth, u, alpha=2.0 * b).sigmoid_()
        sg = torch.threshold_(torch.addcmul(sg, sg, sg, value=-1.0).mul_(4.0 * c), edge, 0.0)
        g = torch.empty_like(u) if ctx.constant else gI[t]
        if g_next is None:
            torch.mul(G[t], sg, out=g)
        else:
            torch.addcmul(G[t], u, g_next, value=-tau, out=g).mul_(sg)       # a_t sg_t
        if gvth is not None:
            gvth -= g.sum()
        if g_next is not None:                                                # + tau (1 - y_t) g_{t+1}
            g.add_(g_next, alpha=tau).addcmul_(g_next, y_t.copy_(Yu[t]), value=-tau)
        if ctx.constant and g_next is None:
            gI.copy_(g)
        elif ctx.constant:
            gI.add_(g)
        g_next = g
    grad_cur = _unflatten(gI, ctx.cur_shape, ctx.cur_cl)
    if ctx.dtype != dtype:
        grad_cur = grad_cur.to(ctx.dtype)
    gvth = gvth.reshape(vth.shape).to(vth.dtype) if gvth is not None else None
    return grad_cur, gvth


class _FusedLavaLIFFn(torch.autograd.Function):
    """The chip's integer LIF (`integer.lava_lif`) over all T steps in one op: the forward is the
    very float64 arithmetic of `integer.lava_lif_step` (so the same spikes, bit for bit), run
    without an autograd graph; the backward is the float LIF's with tau = (4096 - dv) / 4096 on
    u = v * s / 64, which is what the straight-through truncation gives (the 24-bit clip of v is
    passed straight through as well). Saved: u in float32 and the spikes as bool, not ~6 float64
    tensors per step."""

    @staticmethod
    def forward(ctx, current: torch.Tensor, vth: torch.Tensor, units: torch.Tensor, scale: torch.Tensor,
                vth_int: torch.Tensor, T: int, factor: float, temperature: float, constant: bool
                ):  # type: ignore[override]
        cur = dense_like(current)
        cl = cur.dim() == 4 and not cur.is_contiguous()
        u_in = time_flat(dense_like(units).double(), 1 if constant else T).mul(_ACT_MUL)
        n = T * cur.shape[0] if constant else cur.shape[0]
        shape = (n,) + tuple(cur.shape[1:])
        m = u_in.shape[1]
        s = scale.detach().double()
        c, th = s / _ACT_MUL, vth_int.detach().double() * s
        U = torch.empty((T, m), dtype=torch.float32, device=cur.device)
        Yb = torch.empty((T, m), dtype=torch.bool, device=cur.device)
        v = torch.empty(m, dtype=torch.float64, device=cur.device)
        uc = torch.empty_like(v)
        for t in range(T):
            x = u_in[0] if constant else u_in[t]
            if t == 0:
                v.copy_(x)
            else:   # trunc(v (1 - y) factor) + x, in place: a spiking v is > 0, so (1 - y) v is +0 there
                v.masked_fill_(Yb[t - 1], 0.0).mul_(factor).trunc_().add_(x)
            v.clamp_(-_V_MAX, _V_MAX)
            torch.mul(v, c, out=uc)
            torch.gt(uc, th, out=Yb[t])
            U[t].copy_(uc)
        out = torch.empty(shape, dtype=cur.dtype, device=cur.device,
                          memory_format=CL if cl else torch.contiguous_format)
        time_flat(out, T).copy_(Yb.view(torch.uint8))
        ctx.save_for_backward(U, Yb, vth)
        ctx.T, ctx.tau, ctx.temperature, ctx.constant = T, factor, temperature, constant
        ctx.cur_shape, ctx.cur_cl, ctx.dtype, ctx.work = cur.shape, cl, cur.dtype, torch.float32
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        return (*_lif_backward(ctx, grad_out), None, None, None, None, None, None, None)


def _unflatten(flat: torch.Tensor, shape: torch.Size | tuple[int, ...], channels_last: bool) -> torch.Tensor:
    """Inverse of time_flat: [T, M] storage -> a tensor of `shape` in the given memory format."""
    if channels_last:
        n, c, h, w = shape
        return flat.reshape(n, h, w, c).permute(0, 3, 1, 2)  # channels_last strides, no copy
    return flat.reshape(shape)


def fused_lava_lif(current: torch.Tensor, units: torch.Tensor, scale: torch.Tensor, vth_int: torch.Tensor,
                   T: int, temperature: float, dv: int = DEFAULT_DV, constant: bool = False) -> torch.Tensor:
    """Lava's fixed-point LIF over all steps: spikes [T*B, ...] in current's dtype, equal to
    `integer.lava_lif(units over T, scale, vth_int)`. `current` (= scale * units, differentiable)
    carries the gradient; `units` (the accumulator a + bias_int) sets the forward exactly."""
    if not constant and current.shape[0] % T:
        raise ValueError(f"leading dim {current.shape[0]} is not a multiple of T={T}")
    vth = (vth_int * scale).to(current.dtype)        # the threshold's gradient path (Vth -> vth_int)
    factor = (DECAY_UNITY - int(dv)) / float(DECAY_UNITY)
    return _FusedLavaLIFFn.apply(current, vth, units.detach(), scale, vth_int, T, factor, temperature, constant)


def fused_lif(current: torch.Tensor, vth: torch.Tensor, T: int, params: LIFParams = LIFParams(),
              constant: bool = False, save_dtype: torch.dtype | None = None,
              out_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1 over all steps: (spikes [T*B, ...], their uint8 copy) for currents [T*B, ...]
    (or [B, ...] fed at every step when `constant`)."""
    if not constant and current.shape[0] % T:
        raise ValueError(f"leading dim {current.shape[0]} is not a multiple of T={T}")
    return _FusedLIFFn.apply(current, vth, T, params.tau, params.temperature, constant, save_dtype, out_dtype)
