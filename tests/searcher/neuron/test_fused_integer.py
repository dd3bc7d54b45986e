"""The fused integer LIF: the same spikes as the step-by-step `lava_lif` bit for bit (exact and
fractional accumulators, the stem's constant input, the 24-bit clip), and the same gradients for
the current and the threshold, within float32 rounding of the surrogate."""
from __future__ import annotations

import pytest
import torch

from lsnn.searcher.neuron import DSPIKE_TEMPERATURE, fused_lava_lif, lava_lif

CL = torch.channels_last


def _case(seed: int, T: int, B: int, constant: bool, integer: bool, big: bool = False):
    g = torch.Generator().manual_seed(seed)
    n = B if constant else T * B
    units = torch.randn(n, 3, 4, 5, generator=g, dtype=torch.float64) * (2e5 if big else 40)
    if integer:
        units = units.round()
    scale = torch.tensor(0.013, dtype=torch.float32)
    vth_param = torch.tensor(0.4, requires_grad=True)
    vth_int = torch.round(vth_param / scale)
    vth_int = vth_param / scale + (vth_int - vth_param / scale).detach()    # straight-through, as quant() does
    return units.float().contiguous(memory_format=CL), scale, vth_int, vth_param


@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_equals_step_by_step_in_spikes_and_gradients(seed, constant, integer):
    T, B = 4, 3
    units, scale, _, _ = _case(seed, T, B, constant, integer)
    res = {}
    for name in ("fused", "steps"):
        _, _, vth_int, vth_param = _case(seed, T, B, constant, integer)
        cur = (units * scale).detach().requires_grad_(True)
        u = cur / scale                                      # the accumulator, as _drive_flat returns it
        if name == "fused":
            y = fused_lava_lif(cur, u, scale, vth_int, T, DSPIKE_TEMPERATURE, constant=constant)
        else:
            x = u.unsqueeze(0).expand(T, *u.shape) if constant else u.view(T, B, *u.shape[1:])
            y = lava_lif(x, scale, vth_int).reshape(T * B, *u.shape[1:]).to(cur.dtype)
        w = torch.linspace(-1, 1, y.numel()).view(y.shape)
        (y * w).sum().backward()
        res[name] = (y.detach().reshape(T * B, -1), cur.grad.detach(), vth_param.grad.detach())
    (yf, gf, tf), (ys, gs, ts) = res["fused"], res["steps"]
    assert torch.equal(yf, ys)
    assert 0.1 < float(yf.mean()) < 0.9                       # the case does spike and does not saturate
    torch.testing.assert_close(gf, gs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(tf, ts, rtol=1e-4, atol=1e-5)


def test_fused_clips_the_membrane_like_lava():
    T, B = 5, 2
    units, scale, vth_int, _ = _case(3, T, B, False, True, big=True)
    vth_int = torch.full((), 2 ** 17 - 1.0)                   # the largest threshold: v piles up and clips
    cur = units * scale
    yf = fused_lava_lif(cur, cur / scale, scale, vth_int, T, DSPIKE_TEMPERATURE)
    ys = lava_lif((cur / scale).view(T, B, *units.shape[1:]), scale, vth_int).reshape(yf.shape).to(yf.dtype)
    assert torch.equal(yf, ys) and yf.sum() > 0
