"""LIF (Eq. 1) and the Dspike surrogate against hand-computed values."""
import math

import torch

from lsnn.searcher.neuron import LIF, dspike_grad, spike


def test_dspike_peak_and_window():
    b = 3.0
    peak = b / (2 * math.tanh(b / 2))  # at u = vth: 3 / (2 tanh 1.5) = 1.657...
    g = dspike_grad(torch.tensor([0.5, 0.0, 1.0, 0.2, 1.2, -0.1]), 0.5, b)
    assert abs(g[0].item() - peak) < 1e-6
    assert abs(peak - 1.6571871) < 1e-6
    assert g[1].item() == 0.0 and g[2].item() == 0.0  # window is open 0 < u < 1
    expected = b * (1 - math.tanh(b * -0.3) ** 2) / (2 * math.tanh(b / 2))
    assert abs(g[3].item() - expected) < 1e-6
    assert g[4].item() == 0.0 and g[5].item() == 0.0


def test_dspike_integrates_to_one_over_window():
    u = torch.linspace(0.0, 1.0, 200001)
    g = dspike_grad(u, 0.5)
    assert abs(torch.trapz(g, u).item() - 1.0) < 1e-3


def test_spike_backward_gives_surrogate_and_threshold_grad():
    u = torch.tensor([0.3, 0.5, 0.9], requires_grad=True)
    vth = torch.tensor(0.5, requires_grad=True)
    y = spike(u, vth)
    assert y.tolist() == [0.0, 0.0, 1.0]
    y.sum().backward()
    sg = dspike_grad(u.detach(), 0.5)
    assert torch.allclose(u.grad, sg)
    assert abs(vth.grad.item() + sg.sum().item()) < 1e-6


def test_lif_trajectory_hand_computed():
    # constant current 0.3, tau 0.2, vth 0.5: u1 = 0.3, u2 = 0.06 + 0.3 = 0.36, u3 = 0.072 + 0.3 = 0.372 ...
    # current 0.45: u1 = 0.45, u2 = 0.09 + 0.45 = 0.54 -> spike, u3 = 0 + 0.45, u4 = 0.54 -> spike
    lif = LIF()
    cur = torch.tensor([[0.3, 0.45]] * 4)  # [T=4, 2]
    y = lif(cur)
    assert y[:, 0].tolist() == [0, 0, 0, 0]
    assert y[:, 1].tolist() == [0, 1, 0, 1]


def test_lif_threshold_override():
    lif = LIF()
    y = lif(torch.full((3, 1), 0.3), vth=torch.tensor(0.25))
    assert y[:, 0].tolist() == [1, 1, 1]
