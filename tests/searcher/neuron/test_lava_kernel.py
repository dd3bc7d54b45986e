"""The compiled integer LIF against the torch path it replaces: the same spikes bit for bit, and
the same gradients to float32 rounding (the kernel's BPTT runs in float64), in both memory
layouts, for the stem's constant input, over several parallel blocks; deterministic."""
from __future__ import annotations

import pytest
import torch

from lsnn.searcher.neuron import DSPIKE_TEMPERATURE, fused_lava_lif
from lsnn.searcher.neuron import lava_kernel

CL = torch.channels_last


def _run(units: torch.Tensor, scale: torch.Tensor, vth: float, T: int, constant: bool):
    cur = (units * scale).detach().requires_grad_(True)
    vth_param = torch.tensor(vth, requires_grad=True)
    vth_int = torch.round(vth_param / scale)
    vth_int = vth_param / scale + (vth_int - vth_param / scale).detach()
    y = fused_lava_lif(cur, units, scale, vth_int, T, DSPIKE_TEMPERATURE, constant=constant)
    (y * torch.linspace(-1, 1, y.numel()).view(y.shape)).sum().backward()
    return y.detach(), cur.grad, vth_param.grad


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("constant", [False, True])
def test_kernel_equals_torch_path(monkeypatch, layout, constant):
    T, B = 3, 4
    g = torch.Generator().manual_seed(7)
    n = B if constant else T * B
    units = (torch.randn(n, 6, 20, 30, generator=g) * 300).round()     # 3,600 neurons a sample: 4+ blocks
    units = units.contiguous(memory_format=CL) if layout == "channels_last" else units.contiguous()
    scale = torch.tensor(0.0123)
    assert lava_kernel.usable(units, scale, torch.tensor(1.0), torch.float32)
    fast = _run(units, scale, 2.0, T, constant)
    monkeypatch.setattr(lava_kernel, "usable", lambda *a: False)
    slow = _run(units, scale, 2.0, T, constant)
    assert 0.05 < float(fast[0].mean()) < 0.95
    assert torch.equal(fast[0], slow[0])
    torch.testing.assert_close(fast[1], slow[1], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fast[2], slow[2], rtol=1e-4, atol=1e-6)
    assert float(fast[1].abs().sum()) > 0 and float(fast[2].abs()) > 0
    monkeypatch.undo()
    again = _run(units, scale, 2.0, T, constant)
    assert all(torch.equal(a, b) for a, b in zip(fast, again))          # deterministic
    assert fast[0].is_contiguous(memory_format=CL) == (layout == "channels_last")


def test_kernel_not_used_for_per_channel_thresholds_or_float64_spikes():
    u = torch.zeros(2, 3, 4, 4)
    assert not lava_kernel.usable(u, torch.tensor(0.1), torch.ones(3), torch.float32)
    assert not lava_kernel.usable(u, torch.tensor(0.1), torch.tensor(1.0), torch.float64)
