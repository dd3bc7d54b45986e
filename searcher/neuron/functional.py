"""The float LIF (LitE-SNN Eq. 1) as pure functions: the Dspike surrogate, the spike function
with a threshold gradient, and `lif_step`, one step `(current, state) -> (spikes, state)`
(norse style). The integer variant the chip runs is `integer.lava_lif_step`; the modules that
pick a variant are in `module`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

TAU_DEFAULT = 0.2
VTH_INIT = 0.5
DSPIKE_TEMPERATURE = 3.0


def dspike_grad(u: torch.Tensor, vth: torch.Tensor | float, temperature: float = DSPIKE_TEMPERATURE) -> torch.Tensor:
    """Dspike surrogate dy/du: b(1 - tanh(b(u - vth))^2) / (2 tanh(b/2)) for |u - vth| < 1/2, else 0.

    With vth = 0.5 the window is 0 < u < 1, as in docs/DESIGN.md section 2; the window moves with a
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
