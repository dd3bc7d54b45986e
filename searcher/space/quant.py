"""EdMIPS weight quantizer (mid-rise grid, no zero level) with a straight-through gradient.

Delta = step_b * std(W) for the searched widths {1, 2, 4} (the steps EdMIPS/HWGQ use for a
Gaussian); wider fixed layers (stem, FC at 8 bits) use the range rule Delta = max|W| / (2^b/2 - 0.5).
q = (round(W/Delta + 0.5) - 0.5) * Delta (ties up, i.e. floor(W/Delta) + 0.5), clipped to +-(2^b/2 - 0.5) * Delta.
On the grid, 2q/Delta is an odd integer with |.| <= 2^b - 1: b + 1 hardware bits, mixed sign.
"""
from __future__ import annotations

import torch

EDMIPS_STEP = {1: 1.596, 2: 0.996, 4: 0.336}
SEARCH_BITS = (1, 2, 4)


def edmips_delta(w: torch.Tensor, bits: int) -> torch.Tensor:
    """The quantization step Delta of `w` at `bits` (no gradient: a statistic of W)."""
    w = w.detach()
    if bits in EDMIPS_STEP:
        return EDMIPS_STEP[bits] * w.float().std().clamp_min(1e-8)
    return w.abs().max().clamp_min(1e-8) / (2 ** bits / 2 - 0.5)


class _StraightThrough(torch.autograd.Function):
    """op(x) exactly in the forward pass, identity gradient in the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, op):  # type: ignore[override]
        return op(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        return g, None


def _straight_through(x: torch.Tensor, op) -> torch.Tensor:
    return _StraightThrough.apply(x, op)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward."""
    return _straight_through(x, torch.round)


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    """floor(x) forward, identity backward."""
    return _straight_through(x, torch.floor)


def trunc_ste(x: torch.Tensor) -> torch.Tensor:
    """trunc(x) (toward zero, as Lava's shifts of |v|) forward, identity backward."""
    return _straight_through(x, torch.trunc)


def clip_ste(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """clamp(x, lo, hi) with gradient 1 on the closed interval [lo, hi], 0 outside it. The
    outermost EdMIPS levels lie exactly on the bounds (every kept 1-bit weight does), and
    torch.clamp passes no gradient there since torch 2.4 or so (it did before), so the
    quantizers clip with this instead: the same training on every torch."""
    inside = (x >= lo) & (x <= hi)
    return torch.where(inside, x, torch.clamp(x, lo, hi).detach())


def edmips_quantize(w: torch.Tensor, bits: int, delta: torch.Tensor | None = None) -> torch.Tensor:
    """Quantize `w` onto the b-bit EdMIPS grid (straight-through gradient)."""
    d = edmips_delta(w, bits) if delta is None else delta
    lim = (2 ** bits / 2 - 0.5)
    # round(W/D + 0.5) - 0.5 with ties rounded up == floor(W/D) + 0.5: a tie (W on a cell
    # boundary, e.g. W = 0) always goes to the upper level, independent of round-half-even.
    q = floor_ste(w / d) + 0.5
    q = clip_ste(q, -lim, lim)
    return q * d


def to_grid_integers(wq: torch.Tensor, delta: float) -> torch.Tensor:
    """Integers of a quantized tensor in units of Delta/2 (odd for kept weights)."""
    return torch.round(wq / (delta / 2.0)).to(torch.int32)


def quantize_to_scale(x: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Round x to the grid of `scale` with a straight-through gradient (bias, threshold, skip weight)."""
    return round_ste(x / scale) * scale
