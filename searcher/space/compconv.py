"""CompConv (LitE-SNN Eq. 8-11), its naive per-branch form (Eq. 4-7) and the fixed 8-bit layers.

A CompConv holds ONE weight W and ONE importance-score tensor. Its effective weight is
    w = (sum_j softmax(beta)_j * Q_{b_j}(W)) * topk_mask(scores, p)
with Q the EdMIPS quantizer (straight-through) and b_j in {1, 2, 4}; beta belongs to the cell
and is passed in as probabilities. The effective weight is computed once per forward and the
conv runs once over all T*B frames, so quantizing and masking cost O(#weights), not O(T).

NaiveCompConv keeps a weight and a score tensor per branch (Eq. 4-7); both variants mix in
weight space, so they cost the same activation work and differ only in parameters and in how
the gradient is shared (branches with small beta get little of it in the naive form).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lsnn.errors import ConfigError
from lsnn.searcher.space.mask import topk_mask
from lsnn.searcher.space.quant import EDMIPS_STEP, SEARCH_BITS, edmips_delta, edmips_quantize

FIXED_BITS = 8


def _check(cin: int, cout: int, kernel_size: int, stride: int, prune_rate: float, name: str) -> None:
    if min(cin, cout, kernel_size, stride) < 1:
        raise ConfigError(f"{name}: cin, cout, kernel_size and stride must be >= 1, "
                          f"got {cin}, {cout}, {kernel_size}, {stride}")
    if not 0.0 <= prune_rate < 1.0:
        raise ConfigError(f"{name}: prune rate must be in [0, 1), got {prune_rate}")


def _init_weight(cout: int, cin: int, k: int) -> torch.Tensor:
    w = torch.empty(cout, cin, k, k)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # torch's Conv2d default
    return w


class _SpikeConvFn(torch.autograd.Function):
    """conv2d whose input is binary spikes: saved for backward as uint8 (a quarter of float32)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, stride: int, padding: int,
                xq: torch.Tensor | None):  # type: ignore[override]
        ctx.save_for_backward(x.detach().to(torch.uint8) if xq is None else xq, w)
        ctx.stride, ctx.padding, ctx.dtype = stride, padding, x.dtype
        return F.conv2d(x, w, None, stride, padding)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        xq, w = ctx.saved_tensors
        s, p = ctx.stride, ctx.padding
        gx, gw, _ = torch.ops.aten.convolution_backward(
            g, xq.to(ctx.dtype), w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False])
        return gx, gw, None, None, None


def spike_conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int = 0,
               xq: torch.Tensor | tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
    """F.conv2d(x, w) for binary x (spikes): exact, but keeps only a uint8 copy of x for backward
    (`xq`, if given, is that copy, shared by every consumer of the same spikes)."""
    if not torch.is_grad_enabled() or not (x.requires_grad or w.requires_grad):
        return F.conv2d(x, w, None, stride, padding)
    if isinstance(xq, (tuple, list)):   # channel parts of the copy (a cell output's nodes)
        xq = torch.cat(xq, 1)
    return _SpikeConvFn.apply(x, w, stride, padding, xq)


def _deltas(w: torch.Tensor, bits: tuple[int, ...]) -> list[torch.Tensor]:
    """quant.edmips_delta(w, b) for every b, with std(W) computed once (same formula, same values)."""
    std = None
    out = []
    for b in bits:
        if b in EDMIPS_STEP:
            std = w.detach().float().std().clamp_min(1e-8) if std is None else std
            out.append(EDMIPS_STEP[b] * std)
        else:
            out.append(edmips_delta(w, b))
    return out


def _levels(w: torch.Tensor, bits: int, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q_b(w) (quant.edmips_quantize's forward value) and where its straight-through gradient is 1
    (on the closed clip range, as `quant.clip_ste`)."""
    lim = 2 ** bits / 2 - 0.5
    k = torch.floor(w / d) + 0.5          # quant.edmips_quantize's level before clamping (tests hold them equal)
    return edmips_quantize(w, bits, d), k.abs() <= lim


class _CompWeightFn(torch.autograd.Function):
    """Effective CompConv weight as one autograd node (instead of ~30 small ops).

    shared (Eq. 8-11): out = (sum_j pi_j Q_j(W)) * mask(S)
    naive  (Eq. 4-7):  out = sum_j pi_j Q_j(W_j) * mask(S_j)
    Straight-through gradients exactly as quant.edmips_quantize and mask.topk_mask define them:
    dQ_j/dW = 1 inside the clip range (0 outside), d mask/dS = 1."""

    @staticmethod
    def forward(ctx, pi: torch.Tensor, w: torch.Tensor, scores: torch.Tensor, bits: tuple[int, ...],
                prune: float, naive: bool):  # type: ignore[override]
        with torch.no_grad():
            if naive:
                masks = [topk_mask(s, prune) for s in scores.unbind(0)]
                out = sum(pi[j] * edmips_quantize(w[j], b, _deltas(w[j], (b,))[0]) * masks[j]
                          for j, b in enumerate(bits))
                saved_mask = torch.stack(masks).to(torch.bool)
            else:
                mask = topk_mask(scores, prune)
                ds = _deltas(w, bits)
                out = sum(pi[j] * edmips_quantize(w, b, ds[j]) for j, b in enumerate(bits)) * mask
                saved_mask = mask.to(torch.bool)
        ctx.save_for_backward(pi, w, saved_mask)
        ctx.bits, ctx.naive = bits, naive
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        pi, w, mask_b = ctx.saved_tensors
        bits, naive = ctx.bits, ctx.naive
        need_pi, need_w, need_s = ctx.needs_input_grad[:3]
        g_pi = torch.zeros_like(pi) if need_pi else None
        g_w = torch.zeros_like(w) if need_w else None
        g_s = torch.zeros_like(w) if need_s else None
        if naive:
            for j, b in enumerate(bits):
                q, inside = _levels(w[j], b, _deltas(w[j], (b,))[0])
                gm = g * mask_b[j]
                if need_pi:
                    g_pi[j] = (gm * q).sum()
                if need_w:
                    g_w[j] = gm * inside * pi[j]
                if need_s:
                    g_s[j] = g * q * pi[j]
            return g_pi, g_w, g_s, None, None, None
        gm = g * mask_b
        ds = _deltas(w, bits)
        for j, b in enumerate(bits):
            q, inside = _levels(w, b, ds[j])
            if need_pi:
                g_pi[j] = (gm * q).sum()
            if need_w:
                g_w.addcmul_(gm, inside * pi[j])
            if need_s:
                g_s.addcmul_(g, q * pi[j])
        return g_pi, g_w, g_s, None, None, None


class CompConv(nn.Module):
    """Shared-weight, shared-mask mixed-precision conv (no bias: a BN follows)."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, prune_rate: float = 0.5,
                 bits: tuple[int, ...] = SEARCH_BITS) -> None:
        super().__init__()
        _check(cin, cout, kernel_size, stride, prune_rate, "CompConv")
        self.cin, self.cout, self.kernel_size, self.stride = cin, cout, kernel_size, stride
        self.padding = kernel_size // 2
        self.prune_rate = float(prune_rate)
        self.bits = tuple(int(b) for b in bits)
        w = _init_weight(cout, cin, kernel_size)
        self.weight = nn.Parameter(w)
        self.scores = nn.Parameter(w.clone())  # HYDRA-style scores, initialised proportional to W

    def mixed_weight(self, beta_softmax: torch.Tensor) -> torch.Tensor:
        """Eq. 10: e(W) = sum_j softmax(beta)_j Q_{b_j}(W) (before masking)."""
        return sum(beta_softmax[j] * edmips_quantize(self.weight, b) for j, b in enumerate(self.bits))

    def mask(self, branch: int = 0) -> torch.Tensor:
        """The binary keep-mask (shared by all bit branches; straight-through to the scores)."""
        return topk_mask(self.scores, self.prune_rate)

    def effective_weight(self, beta_softmax: torch.Tensor) -> torch.Tensor:
        """Eq. 11: W_output = e(W) * mask (one fused autograd node; equals mixed_weight * mask)."""
        return _CompWeightFn.apply(beta_softmax, self.weight, self.scores, self.bits, self.prune_rate, False)

    def forward(self, x: torch.Tensor, beta_softmax: torch.Tensor, xq: torch.Tensor | None = None) -> torch.Tensor:
        """x: binary spikes (every CompConv of the search space reads spikes); xq: their uint8 copy.
        The conv runs in x's dtype (bfloat16 spikes: a bfloat16 conv, float32 master weights)."""
        return spike_conv(x, self.effective_weight(beta_softmax).to(x.dtype), self.stride, self.padding, xq)

    def extra_repr(self) -> str:
        return (f"{self.cin}, {self.cout}, k={self.kernel_size}, stride={self.stride}, "
                f"p={self.prune_rate}, bits={self.bits}")


class NaiveCompConv(nn.Module):
    """Eq. 4-7: a weight W_j and a mask_j per bit branch, e(W) = sum_j softmax(beta)_j Q_j(W_j) mask_j.

    All branches start from the same W (so at initialisation it equals a CompConv with that W).
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, prune_rate: float = 0.5,
                 bits: tuple[int, ...] = SEARCH_BITS) -> None:
        super().__init__()
        _check(cin, cout, kernel_size, stride, prune_rate, "NaiveCompConv")
        self.cin, self.cout, self.kernel_size, self.stride = cin, cout, kernel_size, stride
        self.padding = kernel_size // 2
        self.prune_rate = float(prune_rate)
        self.bits = tuple(int(b) for b in bits)
        w = _init_weight(cout, cin, kernel_size)
        nb = len(self.bits)
        self.weight = nn.Parameter(w.unsqueeze(0).repeat(nb, 1, 1, 1, 1))   # [branches, cout, cin, k, k]
        self.scores = nn.Parameter(w.unsqueeze(0).repeat(nb, 1, 1, 1, 1))

    def effective_weight(self, beta_softmax: torch.Tensor) -> torch.Tensor:
        """Eq. 6-7: sum_j softmax(beta)_j Q_j(W_j) * mask_j (one fused autograd node)."""
        return _CompWeightFn.apply(beta_softmax, self.weight, self.scores, self.bits, self.prune_rate, True)

    def mask(self, branch: int = 0) -> torch.Tensor:
        """The keep-mask of one bit branch (each branch has its own)."""
        return topk_mask(self.scores[branch], self.prune_rate)

    def forward(self, x: torch.Tensor, beta_softmax: torch.Tensor, xq: torch.Tensor | None = None) -> torch.Tensor:
        return spike_conv(x, self.effective_weight(beta_softmax).to(x.dtype), self.stride, self.padding, xq)


COMPCONV_KINDS = {"shared": CompConv, "naive": NaiveCompConv}


def make_compconv(kind: str, cin: int, cout: int, kernel_size: int, stride: int = 1,
                  prune_rate: float = 0.5) -> nn.Module:
    """CompConv ("shared", Eq. 8-11) or NaiveCompConv ("naive", Eq. 4-7) by name."""
    try:
        cls = COMPCONV_KINDS[kind]
    except KeyError:
        raise ConfigError(f"unknown compconv kind '{kind}' (supported: {', '.join(COMPCONV_KINDS)})") from None
    return cls(cin, cout, kernel_size, stride, prune_rate)


class FixedQuantConv(nn.Module):
    """Dense, unpruned conv at a fixed width (8 bits, range rule): the stem reads graded input."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, bits: int = FIXED_BITS) -> None:
        super().__init__()
        _check(cin, cout, kernel_size, stride, 0.0, "FixedQuantConv")
        self.cin, self.cout, self.kernel_size, self.stride = cin, cout, kernel_size, stride
        self.padding = kernel_size // 2
        self.bits = int(bits)
        self.weight = nn.Parameter(_init_weight(cout, cin, kernel_size))

    def quantized_weight(self) -> torch.Tensor:
        return edmips_quantize(self.weight, self.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.quantized_weight(), None, self.stride, self.padding)


class FixedQuantLinear(nn.Module):
    """Dense, unpruned FC with fixed-width (8-bit) weights and a float bias (the readout)."""

    def __init__(self, cin: int, cout: int, bits: int = FIXED_BITS) -> None:
        super().__init__()
        if min(cin, cout) < 1:
            raise ConfigError(f"FixedQuantLinear: cin and cout must be >= 1, got {cin}, {cout}")
        self.cin, self.cout, self.bits = cin, cout, int(bits)
        lin = nn.Linear(cin, cout)
        self.weight = nn.Parameter(lin.weight.detach().clone())
        self.bias = nn.Parameter(lin.bias.detach().clone())

    def quantized_weight(self) -> torch.Tensor:
        return edmips_quantize(self.weight, self.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)
