"""Cost model (Eq. 12-14, 18-20, Table 5, S-ACE/NS-ACE): each formula against hand-computed values."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from lsnn import cost_model as cm
from lsnn.errors import ConfigError


def test_module_imports_without_torch():
    code = "import sys; import lsnn.cost_model; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("make", [list, np.array, lambda v: torch.tensor(v, dtype=torch.float64)])
def test_expected_bits_eq19(make):
    # 0.2*1 + 0.3*2 + 0.5*4 = 2.8
    assert float(cm.expected_bits(make([0.2, 0.3, 0.5]))) == pytest.approx(2.8)


def test_expected_bits_rejects_wrong_length():
    with pytest.raises(ConfigError, match="expected 3 bit probabilities"):
        cm.expected_bits([0.5, 0.5])


def test_timestep_weights_paper_example():
    # Eq. 14 example: probs [0,0,0,0,.6,.4] -> steps 1-5 count fully, step 6 with 0.4
    w = cm.timestep_weights([0, 0, 0, 0, 0.6, 0.4])
    np.testing.assert_allclose(w, [1, 1, 1, 1, 1, 0.4])
    wt = cm.timestep_weights(torch.tensor([0, 0, 0, 0, 0.6, 0.4], dtype=torch.float64))
    assert isinstance(wt, torch.Tensor)
    np.testing.assert_allclose(wt.numpy(), [1, 1, 1, 1, 1, 0.4])
    # degenerate to Eq. 13 with all weight on T
    np.testing.assert_allclose(cm.timestep_weights([0, 0, 1.0]), [1, 1, 1])


def test_weighted_spike_count_and_expected_T():
    # probs [.5, .25, .25] -> w = [1, .5, .25]; S = .1*1 + .2*.5 + .3*.25 = .275
    assert float(cm.weighted_spike_count([0.1, 0.2, 0.3], [0.5, 0.25, 0.25])) == pytest.approx(0.275)
    # E[T] = 1*.5 + 2*.25 + 3*.25 = 1.75
    assert float(cm.expected_timesteps([0.5, 0.25, 0.25])) == pytest.approx(1.75)


def test_weighted_spike_count_gradient_wrt_psi():
    psi = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    rates = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    S = cm.weighted_spike_count(rates, torch.softmax(psi, 0))
    S.backward()
    # S = sum_t p_t * cumsum(r)_t, cumsum = [.1, .3, .6]; dS/dpsi_t = p_t (c_t - S), p = 1/3, S = 1/3
    c = np.array([0.1, 0.3, 0.6])
    np.testing.assert_allclose(psi.grad.numpy(), (c - c.mean()) / 3)


def test_mem_synops_bit_synops_hand_values():
    # 3x3 conv, 4 -> 8 channels, 5x5 output, p = 0.5, b_w = 2
    assert cm.mem_bits(2, 3, 3, 4, 8, 0.5) == pytest.approx(2 * 9 * 32 * 0.5)          # 288
    assert cm.macs(3, 3, 4, 8, 5, 5) == 9 * 32 * 25                                      # 7200
    syn = cm.synops(3, 3, 4, 8, 5, 5, 0.275, 0.5)
    assert syn == pytest.approx(0.5 * 7200 * 0.275)                                      # 990
    assert cm.bit_synops(2, syn) == pytest.approx(1980)
    # pool: an FC over a 4x4 map costs cout ops per input spike at any position
    assert cm.synops(1, 1, 8, 10, 1, 1, 0.5, pool=16) == pytest.approx(8 * 10 * 16 * 0.5)


def test_ace_and_energy_hand_values():
    # S-ACE: MACs 7200, T 4, rate .25, b_w 2, binary spikes, p .5 -> 7200*4*.25*2*1*.5 = 7200
    assert cm.s_ace(7200, 4, 0.25, 2, 1, 0.5) == pytest.approx(7200)
    # NS-ACE: every MAC every step, no pruning or sparsity discount: 7200*4*2*1
    assert cm.ns_ace(7200, 4, 2, 1) == pytest.approx(57600)
    # Table 5 method: 1e6 adds * 0.9 pJ + 1e5 mults * 3.7 pJ = 1.27e-6 J
    assert cm.energy_paper(1e6, 1e5) == pytest.approx(1.27e-6)
    # profile: 100 SynOps * 23.6 + 10 updates * 52 + 5 spikes * 2 = 2360 + 520 + 10
    assert cm.energy_hw(100, 10, 5, 23.6, 52.0, 2.0) == pytest.approx(2890.0)


def test_formulas_broadcast_over_numpy_arrays():
    bits = np.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(cm.mem_bits(bits, 3, 3, 2, 2, 0.0), [36, 72, 144])


def test_layer_table_totals():
    T = 4.0
    layers = [
        cm.LayerCost("stem", "stem", 3, 3, 3, 8, 4, 4, 8, 0.0, 1.0, in_bits=8),
        cm.LayerCost("c1", "conv", 3, 3, 8, 8, 4, 4, 2.0, 0.5, 0.25, weight=0.5),
        cm.LayerCost("fc", "fc", 1, 1, 8, 10, 1, 1, 8, 0.0, 0.125, pool=16),
    ]
    t = cm.totals(layers, T)
    stem_macs = 9 * 3 * 8 * 16                                     # 3456 per step
    c1_macs = 9 * 8 * 8 * 16                                       # 9216 per step
    mem = 8 * 9 * 3 * 8 + 0.5 * 2.0 * 9 * 64 * 0.5 + 8 * 80       # 1728 + 288 + 640
    assert t.mem_bits == pytest.approx(mem)
    assert t.model_size_bytes == pytest.approx(mem / 8)
    syn_c1 = 0.5 * 0.5 * c1_macs * 0.25 * T                         # weight * (1-p) * MACs * S
    syn_fc = 8 * 10 * 16 * 0.125 * T
    assert t.synops == pytest.approx(syn_c1 + syn_fc)
    assert t.bit_synops == pytest.approx(2.0 * syn_c1 + 8 * syn_fc)
    assert t.mults == pytest.approx(stem_macs * T)
    assert t.adds == t.synops
    assert t.energy_j == pytest.approx((t.synops * 0.9 + stem_macs * T * 3.7) * 1e-12)
    s_ace = stem_macs * T * 1.0 * 8 * 8 + 0.5 * c1_macs * T * 0.25 * 2.0 * 1 * 0.5 + 8 * 10 * 16 * T * 0.125 * 8
    assert t.s_ace == pytest.approx(s_ace)
    assert t.ns_ace == pytest.approx(stem_macs * T * 8 * 8 + 0.5 * c1_macs * T * 2.0 + 8 * 10 * 16 * T * 8)
    text = cm.format_table(layers, T)
    assert "c1" in text and "model size" in text


def test_layer_cost_validation_names_the_layer():
    with pytest.raises(ConfigError, match="layer 'x'.*prune"):
        cm.LayerCost("x", "conv", 3, 3, 1, 1, 1, 1, 2, 1.0, 0.1)
    with pytest.raises(ConfigError, match="kind 'pool'"):
        cm.LayerCost("x", "pool", 3, 3, 1, 1, 1, 1, 2, 0.0, 0.1)


def test_bit_synops_differentiable_in_beta():
    beta = torch.zeros(3, requires_grad=True)
    bw = cm.expected_bits(torch.softmax(beta, 0))
    cost = cm.bit_synops(bw, cm.synops(3, 3, 4, 4, 8, 8, 0.3, 0.5))
    cost.backward()
    # d b_w / d beta_j = p_j (q_j - b_w) with p = 1/3, b_w = 7/3
    expect = np.array([1 - 7 / 3, 2 - 7 / 3, 4 - 7 / 3]) / 3 * float(cm.synops(3, 3, 4, 4, 8, 8, 0.3, 0.5))
    np.testing.assert_allclose(beta.grad.numpy(), expect, rtol=1e-5)
