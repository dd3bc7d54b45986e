"""LIF neuron (LitE-SNN Eq. 1) with the Dspike surrogate gradient and a learnable threshold.

`lif_step` is the pure step function (norse style) the compiler's semantics mirror;
`LIF` runs the recurrence over a whole [T, B, ...] current tensor (conv work is batched
over T x B outside, only this cheap elementwise loop is sequential).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

TAU_DEFAULT = 0.2
VTH_INIT = 0.5
DSPIKE_TEMPERATURE = 3.0


def dspike_grad(u: torch.Tensor, vth: torch.Tensor | float, temperature: float = DSPIKE_TEMPERATURE) -> torch.Tensor:
    """Dspike surrogate dy/du: b(1 - tanh(b(u - vth))^2) / (2 tanh(b/2)) for |u - vth| < 1/2, else 0.

    With vth = 0.5 the window is 0 < u < 1, as in DESIGN.md section 2; the window moves with a
    learned threshold. The surrogate integrates to 1 over the window.
    """
    b = temperature
    z = u - vth
    g = b * (1.0 - torch.tanh(b * z) ** 2) / (2.0 * math.tanh(b / 2.0))
    return torch.where(z.abs() < 0.5, g, torch.zeros_like(g))


class SpikeFn(torch.autograd.Function):
    """Heaviside forward, Dspike backward; also returns a gradient for the threshold."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, vth: torch.Tensor, temperature: float):  # type: ignore[override]
        ctx.save_for_backward(u, vth)
        ctx.temperature = temperature
        return (u > vth).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        u, vth = ctx.saved_tensors
        sg = grad_out * dspike_grad(u, vth, ctx.temperature)
        grad_vth = -sg.sum().reshape(vth.shape) if ctx.needs_input_grad[1] else None
        return sg, grad_vth, None


def spike(u: torch.Tensor, vth: torch.Tensor, temperature: float = DSPIKE_TEMPERATURE) -> torch.Tensor:
    """Spike function y = [u > vth] with the Dspike surrogate gradient."""
    return SpikeFn.apply(u, vth, temperature)


@dataclass(frozen=True)
class LIFParams:
    """Explicit neuron parameters (the compiler needs every one of them)."""

    tau: float = TAU_DEFAULT
    temperature: float = DSPIKE_TEMPERATURE


def lif_step(current: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None,
             vth: torch.Tensor, params: LIFParams = LIFParams()) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One step of Eq. 1: u_t = tau * u_{t-1} * (1 - y_{t-1}) + I_t; y_t = [u_t > vth] (hard reset to 0)."""
    if state is None:
        u = current
    else:
        u_prev, y_prev = state
        u = params.tau * u_prev * (1.0 - y_prev) + current
    y = spike(u, vth, params.temperature)
    return y, (u, y)


class LIF(nn.Module):
    """LIF population with a learnable scalar threshold, run over all T steps of [T, B, ...] currents."""

    def __init__(self, tau: float = TAU_DEFAULT, vth_init: float = VTH_INIT,
                 temperature: float = DSPIKE_TEMPERATURE, learn_vth: bool = True) -> None:
        super().__init__()
        self.params = LIFParams(tau=tau, temperature=temperature)
        self.vth = nn.Parameter(torch.tensor(float(vth_init)), requires_grad=learn_vth)

    def forward(self, current: torch.Tensor, vth: torch.Tensor | None = None) -> torch.Tensor:
        """current: [T, B, ...] -> spikes [T, B, ...]. `vth` overrides the parameter (e.g. a quantized one)."""
        th = self.vth if vth is None else vth
        out = []
        state = None
        for t in range(current.shape[0]):
            y, state = lif_step(current[t], state, th, self.params)
            out.append(y)
        return torch.stack(out, 0)
