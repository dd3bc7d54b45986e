"""Edge operations of the search space (Table 1) and the memory-saving kernels of the hot path.

Op registry: {"conv3x3": CompConv 3x3 + BN, "skip": identity (or spatial subsampling at
stride 2)}; unknown names raise an error listing the supported ones. A MixedOp mixes the ops'
*currents* with softmax(alpha) (Eq. 3); the LIF of the destination node follows.

Tensors are [T*B, C, H, W] (time-major, channels_last): convs run over all steps at once; only
the LIF recurrence loops over T. Hot-path kernels (hand-written backward, minimal saved state):
- `conv_bn`: BN(conv(spikes)) that recomputes the conv output in backward instead of keeping it.
- `skip_add_`: in-place current += alpha * spikes, keeping the spikes as uint8.
Spikes are binary, so every consumer keeps a shared uint8 copy of them (1 byte, not 4).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lsnn.errors import ConfigError
from lsnn.searcher.neuron.fused import CL, dense_like, time_flat
from lsnn.searcher.space.compconv import make_compconv
from lsnn.searcher.space.genotype import OP_NAMES


def step_rates(spikes: torch.Tensor, T: int) -> torch.Tensor:
    """Per-step firing rate s(t) (mean spikes per neuron) of a [T*B, ...] spike tensor -> [T]."""
    flat = time_flat(dense_like(spikes), T)
    return flat.sum(1, dtype=torch.promote_types(spikes.dtype, torch.float32)) / flat.shape[1]


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
