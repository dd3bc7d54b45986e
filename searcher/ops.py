"""Edge operations of the search space (Table 1) and a fused LIF recurrence for the hot path.

Op registry: {"conv3x3": CompConv 3x3 + BN, "skip": identity (or spatial subsampling at
stride 2)}; unknown names raise an error listing the supported ones. A MixedOp mixes the ops'
*currents* with softmax(alpha) (Eq. 3); the LIF of the destination node follows.

Tensors are [T*B, C, H, W] (time-major, channels_last): convs run over all steps at once; only
the LIF recurrence loops over T. Hot-path kernels (hand-written backward, minimal saved state):
- `FusedLIF`: the LIF of `neuron.py` (Eq. 1, hard reset, Dspike surrogate, threshold gradient);
  saves u (optionally float16) and the spikes as bool, instead of ~5 tensors per step.
- `conv_bn`: BN(conv(spikes)) that recomputes the conv output in backward instead of keeping it.
- `skip_add_`: in-place current += alpha * spikes, keeping the spikes as uint8.
Spikes are binary, so every consumer keeps a shared uint8 copy of them (1 byte, not 4).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lsnn.errors import ConfigError
from lsnn.searcher.compconv import make_compconv
from lsnn.searcher.genotype import OP_NAMES
from lsnn.searcher.neuron import LIF, LIFParams

CL = torch.channels_last


def time_flat(x: torch.Tensor, T: int) -> torch.Tensor:
    """A [T, M] *view* of a dense [T*B, ...] tensor (contiguous or channels_last), step-major."""
    if x.is_contiguous():
        return x.view(T, -1)
    if x.dim() == 4 and x.is_contiguous(memory_format=CL):
        return x.permute(0, 2, 3, 1).reshape(T, -1)  # NHWC storage order: a view, no copy
    raise ValueError("time_flat needs a contiguous or channels_last tensor")


def _dense_like(x: torch.Tensor) -> torch.Tensor:
    """x itself if time_flat can view it, else a channels_last (4-D) or contiguous copy."""
    if x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=CL)):
        return x
    return x.contiguous(memory_format=CL) if x.dim() == 4 else x.contiguous()


def step_rates(spikes: torch.Tensor, T: int) -> torch.Tensor:
    """Per-step firing rate s(t) (mean spikes per neuron) of a [T*B, ...] spike tensor -> [T]."""
    flat = time_flat(_dense_like(spikes), T)
    return flat.sum(1, dtype=torch.promote_types(spikes.dtype, torch.float32)) / flat.shape[1]


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
        cur = _dense_like(current)
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
        return grad_cur, gvth, None, None, None, None, None, None


def _unflatten(flat: torch.Tensor, shape: torch.Size | tuple[int, ...], channels_last: bool) -> torch.Tensor:
    """Inverse of time_flat: [T, M] storage -> a tensor of `shape` in the given memory format."""
    if channels_last:
        n, c, h, w = shape
        return flat.reshape(n, h, w, c).permute(0, 3, 1, 2)  # channels_last strides, no copy
    return flat.reshape(shape)


def fused_lif(current: torch.Tensor, vth: torch.Tensor, T: int, params: LIFParams = LIFParams(),
              constant: bool = False, save_dtype: torch.dtype | None = None,
              out_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1 over all steps: (spikes [T*B, ...], their uint8 copy) for currents [T*B, ...]
    (or [B, ...] fed at every step when `constant`)."""
    if not constant and current.shape[0] % T:
        raise ValueError(f"leading dim {current.shape[0]} is not a multiple of T={T}")
    return _FusedLIFFn.apply(current, vth, T, params.tau, params.temperature, constant, save_dtype, out_dtype)


class _SkipAddFn(torch.autograd.Function):
    """acc += a * x in place, x binary spikes (kept as uint8 only when a needs a gradient)."""

    @staticmethod
    def forward(ctx, acc: torch.Tensor, x: torch.Tensor, a: torch.Tensor,
                xq: torch.Tensor | None):  # type: ignore[override]
        acc.addcmul_(x, a)
        ctx.mark_dirty(acc)
        keep = (x.detach().to(torch.uint8) if xq is None else xq) if ctx.needs_input_grad[2] else None
        ctx.save_for_backward(keep, a)
        ctx.dtype = x.dtype
        return acc

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        xq, a = ctx.saved_tensors
        gx = torch.mul(g, a, out=torch.empty_like(g, dtype=ctx.dtype)) if ctx.needs_input_grad[1] else None
        ga = (g * xq.to(ctx.dtype)).sum().reshape(a.shape) if ctx.needs_input_grad[2] else None
        return g, gx, ga, None


def skip_add_(acc: torch.Tensor, x: torch.Tensor, a: torch.Tensor, xq: torch.Tensor | None = None) -> torch.Tensor:
    """acc += a * x (a: 0-d alpha weight, x: binary spikes of acc's shape, xq: their uint8 copy)."""
    if not torch.is_grad_enabled():
        return acc.addcmul_(x, a)
    return _SkipAddFn.apply(acc, x, a, xq)


class _ConvBNFn(torch.autograd.Function):
    """BN(conv(x, w)) in training mode for binary x, keeping only the uint8 spikes: the conv output
    is recomputed in backward (one more conv forward) instead of being stored. This halves the
    memory of the search: the conv outputs are most of what a supernet keeps for backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, bn_w: torch.Tensor | None, bn_b: torch.Tensor | None,
                xq: torch.Tensor | tuple[torch.Tensor, ...], stride: int, padding: int,
                running_mean: torch.Tensor | None, running_var: torch.Tensor | None, momentum: float,
                eps: float):  # type: ignore[override]
        z = F.conv2d(x, w, None, stride, padding)
        y, mean, invstd = torch.native_batch_norm(z, bn_w, bn_b, running_mean, running_var, True, momentum, eps)
        # channel parts of the uint8 spikes (a cell output = its nodes' copies, joined only in backward)
        ctx.xq_parts = tuple(xq) if isinstance(xq, (tuple, list)) else (xq,)
        ctx.save_for_backward(w, bn_w, mean, invstd)
        ctx.stride, ctx.padding, ctx.eps, ctx.dtype, ctx.has_b = stride, padding, eps, x.dtype, bn_b is not None
        return y

    @staticmethod
    def backward(ctx, gy: torch.Tensor):  # type: ignore[override]
        w, bn_w, mean, invstd = ctx.saved_tensors
        s, p = ctx.stride, ctx.padding
        parts = ctx.xq_parts
        x = (parts[0] if len(parts) == 1 else torch.cat(parts, 1)).to(ctx.dtype)
        ctx.xq_parts = None
        z = F.conv2d(x, w, None, s, p)
        need = ctx.needs_input_grad
        gy = gy.contiguous(memory_format=CL) if z.dim() == 4 else gy.contiguous()
        gz, g_bnw, g_bnb = torch.ops.aten.native_batch_norm_backward(
            gy, z, bn_w, None, None, mean, invstd, True, ctx.eps,
            [need[0] or need[1], bn_w is not None and need[2], ctx.has_b and need[3]])
        del z
        gx, gw = None, None
        if need[0] or need[1]:
            gx, gw, _ = torch.ops.aten.convolution_backward(gz, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1,
                                                            [need[0], need[1], False])
        return gx, gw, g_bnw, g_bnb, None, None, None, None, None, None, None


def conv_bn(x: torch.Tensor, xq: torch.Tensor | tuple[torch.Tensor, ...] | None, w: torch.Tensor, stride: int,
            padding: int,
            bn: nn.BatchNorm2d, bn_w: torch.Tensor | None = None, bn_b: torch.Tensor | None = None,
            running_mean: torch.Tensor | None = None, running_var: torch.Tensor | None = None,
            training: bool = True) -> torch.Tensor:
    """BatchNorm(conv2d(x, w)) for binary x with the BN settings of `bn` (weight/bias/statistics may
    be given explicitly, e.g. alpha-scaled or concatenated over edges). xq: the uint8 copy of x, or
    its channel parts. In training with autograd the conv output is recomputed in backward;
    otherwise the plain ops run."""
    rm = bn.running_mean if running_mean is None and bn.track_running_stats else running_mean
    rv = bn.running_var if running_var is None and bn.track_running_stats else running_var
    if bn_w is None and bn.affine:
        bn_w, bn_b = bn.weight, bn.bias
    use_batch = training or rm is None
    grad = torch.is_grad_enabled() and (x.requires_grad or w.requires_grad
                                        or any(t is not None and t.requires_grad for t in (bn_w, bn_b)))
    if not (grad and use_batch):
        return F.batch_norm(F.conv2d(x, w, None, stride, padding), rm, rv, bn_w, bn_b, use_batch, bn.momentum, bn.eps)
    if xq is None:
        xq = x.detach().to(torch.uint8)
    return _ConvBNFn.apply(x, w, bn_w, bn_b, xq, stride, padding, rm, rv, bn.momentum, bn.eps)


class FusedLIF(LIF):
    """`neuron.LIF` (same parameters and state dict) with the fused recurrence over [T*B, ...] input.

    `save_dtype` (e.g. torch.float16) stores the membrane potential for backward at lower precision;
    `out_dtype` is the dtype of the emitted spikes (e.g. torch.bfloat16 for bfloat16 convs)."""

    def __init__(self, *args, save_dtype: torch.dtype | None = None, out_dtype: torch.dtype | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.save_dtype, self.out_dtype = save_dtype, out_dtype

    def forward(self, current: torch.Tensor, T: int | None = None, constant: bool = False) -> torch.Tensor:  # type: ignore[override]
        if T is None:  # neuron.LIF calling convention: [T, B, ...] -> [T, B, ...]
            t = current.shape[0]
            y, _ = fused_lif(current.reshape((-1,) + tuple(current.shape[2:])), self.vth, t, self.params,
                             save_dtype=self.save_dtype)
            return y.view(current.shape)
        return self.forward_packed(current, T, constant)[0]

    def forward_packed(self, current: torch.Tensor, T: int, constant: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """(spikes, uint8 copy of the spikes) for [T*B, ...] currents."""
        return fused_lif(current, self.vth, T, self.params, constant, self.save_dtype, self.out_dtype)


class Skip(nn.Module):
    """Identity; at stride 2 spatial subsampling x[..., ::2, ::2] (no parameters)."""

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ConfigError(f"skip: stride must be 1 or 2, got {stride}")
        self.stride = stride

    def forward(self, x: torch.Tensor, beta_softmax: torch.Tensor | None = None) -> torch.Tensor:
        return x if self.stride == 1 else x[..., ::2, ::2]


class ConvBN(nn.Module):
    """CompConv (shares the cell's beta) followed by BatchNorm (no affine by default, as DARTS'
    search: the edge's scale is alpha's job)."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int, prune_rate: float,
                 compconv: str = "shared", affine: bool = False) -> None:
        super().__init__()
        self.conv = make_compconv(compconv, cin, cout, kernel_size, stride, prune_rate)
        self.bn = nn.BatchNorm2d(cout, affine=affine)

    def forward(self, x: torch.Tensor, beta_softmax: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x, beta_softmax))


OpFactory = Callable[[int, int, float, str, bool], nn.Module]
OPS: dict[str, OpFactory] = {
    "conv3x3": lambda C, stride, p, compconv, affine: ConvBN(C, C, 3, stride, p, compconv, affine),
    "skip": lambda C, stride, p, compconv, affine: Skip(stride),
}
if tuple(OPS) != OP_NAMES:  # alpha's columns follow OP_NAMES
    raise RuntimeError(f"op registry {tuple(OPS)} does not match genotype.OP_NAMES {OP_NAMES}")


def make_op(name: str, C: int, stride: int, prune_rate: float, compconv: str = "shared",
            affine: bool = False) -> nn.Module:
    """Build edge op `name` from the registry."""
    try:
        factory = OPS[name]
    except KeyError:
        raise ConfigError(f"unknown op '{name}' (supported: {', '.join(OPS)})") from None
    return factory(C, stride, prune_rate, compconv, affine)


class MixedOp(nn.Module):
    """Eq. 3: sum_o softmax(alpha)_o * o(x), mixing currents (reference path of a supernet edge)."""

    def __init__(self, C: int, stride: int, prune_rate: float, compconv: str = "shared",
                 affine: bool = False) -> None:
        super().__init__()
        self.stride = stride
        self.ops = nn.ModuleDict({name: make_op(name, C, stride, prune_rate, compconv, affine) for name in OP_NAMES})

    def forward(self, x: torch.Tensor, weights: torch.Tensor, beta_softmax: torch.Tensor) -> torch.Tensor:
        return sum(weights[k] * op(x, beta_softmax) for k, op in enumerate(self.ops.values()))
