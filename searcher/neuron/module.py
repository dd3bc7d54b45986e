"""Thin LIF modules over the pure step functions: `LIF` (a learnable threshold, the step loop
over [T, B, ...]) and `FusedLIF` (the same parameters, the fused recurrence of `fused` over
[T*B, ...]). Convolution work is batched over T x B outside; only the neuron loops over T.
"""
from __future__ import annotations

import torch
from torch import nn

from lsnn.searcher.neuron.functional import DSPIKE_TEMPERATURE, TAU_DEFAULT, VTH_INIT, LIFParams, lif_step
from lsnn.searcher.neuron.fused import fused_lif


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
