"""CompConv (Eq. 8-11), NaiveCompConv (Eq. 4-7), spike conv and the fixed 8-bit layers."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lsnn.errors import ConfigError
from lsnn.searcher.space.compconv import (
    CompConv,
    FixedQuantConv,
    FixedQuantLinear,
    NaiveCompConv,
    make_compconv,
    spike_conv,
)
from lsnn.searcher.space.mask import topk_mask
from lsnn.searcher.space.quant import edmips_quantize

STEP = {1: 1.596, 2: 0.996, 4: 0.336}


def np_edmips(w: np.ndarray, bits: int) -> np.ndarray:
    """Independent NumPy EdMIPS: Delta = step * std (unbiased), mid-rise levels, clip."""
    d = STEP[bits] * w.std(ddof=1)
    lim = 2 ** bits / 2 - 0.5
    return np.clip(np.floor(w / d + 0.5 + 0.5) - 0.5, -lim, lim) * d   # round-half-up, no ties here


def np_topk(s: np.ndarray, p: float) -> np.ndarray:
    k = int(round((1 - p) * s.size))
    m = np.zeros(s.size)
    m[np.argsort(-np.abs(s.ravel()), kind="stable")[:k]] = 1
    return m.reshape(s.shape)


def _conv(cls, p=0.5, seed=0, cin=3, cout=4, k=3):
    torch.manual_seed(seed)
    m = cls(cin, cout, k, 1, p).double()
    with torch.no_grad():
        m.scores.add_(0.05 * torch.randn_like(m.scores))   # scores start equal to W; make them differ
    return m


def test_scores_initialised_proportional_to_weight():
    m = CompConv(4, 4, 3)
    assert torch.equal(m.scores, m.weight)
    assert m.scores.data_ptr() != m.weight.data_ptr()


def test_effective_weight_matches_eq_8_to_11_numpy():
    m = _conv(CompConv, p=0.6)
    pi = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    w = m.weight.detach().numpy()
    expect = sum(pi[j].item() * np_edmips(w, b) for j, b in enumerate((1, 2, 4))) * np_topk(m.scores.detach().numpy(), 0.6)
    got = m.effective_weight(pi).detach().numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-9)   # quant.py takes std in float32
    # mid-rise levels are never zero, so exactly round((1-p) n) weights survive
    assert int((got != 0).sum()) == round(0.4 * w.size)


def test_one_bit_branch_is_plus_minus_half_delta():
    m = _conv(CompConv, p=0.0)
    got = m.effective_weight(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)).detach()
    d = 1.596 * m.weight.detach().std()
    assert torch.allclose(got.abs(), torch.full_like(got, 0.5) * d)


@pytest.mark.parametrize("cls", [CompConv, NaiveCompConv])
def test_fused_weight_function_equals_autograd_composition(cls):
    m = _conv(cls, p=0.5, seed=1)
    beta = torch.randn(3, dtype=torch.float64, requires_grad=True)
    pi = torch.softmax(beta, 0)
    if cls is CompConv:
        ref = sum(pi[j] * edmips_quantize(m.weight, b) for j, b in enumerate((1, 2, 4))) * topk_mask(m.scores, 0.5)
    else:
        ref = sum(pi[j] * edmips_quantize(m.weight[j], b) * topk_mask(m.scores[j], 0.5) for j, b in enumerate((1, 2, 4)))
    got = m.effective_weight(pi)
    assert torch.equal(got, ref)
    g = torch.randn_like(got)
    ga = torch.autograd.grad(got, (beta, m.weight, m.scores), g, retain_graph=True)
    gb = torch.autograd.grad(ref, (beta, m.weight, m.scores), g)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_gradients_hand_formulas_shared():
    m = _conv(CompConv, p=0.5, seed=2)
    pi = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64, requires_grad=True)
    out = m.effective_weight(pi)
    g = torch.randn_like(out)
    out.backward(g)
    mask = topk_mask(m.scores, 0.5).detach()
    qs = [edmips_quantize(m.weight.detach(), b) for b in (1, 2, 4)]
    # d/dpi_j = sum(g * mask * Q_j(W)); d/dscores = g * e(W) (STE through the mask)
    for j in range(3):
        assert pi.grad[j].item() == pytest.approx(float((g * mask * qs[j]).sum()), rel=1e-10)
    torch.testing.assert_close(m.scores.grad, g * sum(pi[j].detach() * qs[j] for j in range(3)))
    # pruned weights get no gradient; a kept weight inside every clip range gets g * sum(pi) = g
    assert torch.all(m.weight.grad[mask == 0] == 0)


def test_naive_equals_shared_at_init_then_diverges():
    torch.manual_seed(3)
    shared = CompConv(3, 4, 3, 1, 0.5).double()
    naive = NaiveCompConv(3, 4, 3, 1, 0.5).double()
    with torch.no_grad():
        naive.weight.copy_(shared.weight.unsqueeze(0).expand_as(naive.weight))
        naive.scores.copy_(shared.scores.unsqueeze(0).expand_as(naive.scores))
    pi = torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)
    torch.testing.assert_close(naive.effective_weight(pi), shared.effective_weight(pi))
    assert naive.weight.numel() == 3 * shared.weight.numel()
    with torch.no_grad():
        naive.scores[1].mul_(torch.rand_like(naive.scores[1]))   # a different mask in branch 1 only
    assert not torch.allclose(naive.effective_weight(pi), shared.effective_weight(pi))


def test_forward_is_conv_with_effective_weight_and_stride():
    m = CompConv(3, 5, 3, stride=2, prune_rate=0.3).double()
    x = (torch.rand(2, 3, 9, 9, dtype=torch.float64) > 0.5).double()
    pi = torch.tensor([0.3, 0.3, 0.4], dtype=torch.float64)
    y = m(x, pi)
    assert y.shape == (2, 5, 5, 5)
    torch.testing.assert_close(y, F.conv2d(x, m.effective_weight(pi), None, 2, 1))


def test_spike_conv_gradients_equal_conv2d():
    torch.manual_seed(4)
    x = (torch.rand(3, 4, 6, 6) > 0.6).float().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    w = torch.randn(5, 4, 3, 3, requires_grad=True)
    y = spike_conv(x, w, 1, 1)
    g = torch.randn_like(y)
    gx, gw = torch.autograd.grad(y, (x, w), g)
    x2 = x.detach().clone().requires_grad_(True)
    w2 = w.detach().clone().requires_grad_(True)
    rx, rw = torch.autograd.grad(F.conv2d(x2, w2, None, 1, 1), (x2, w2), g)
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)


def test_fixed_8bit_layers_are_dense_and_on_grid():
    conv = FixedQuantConv(3, 4, 3)
    q = conv.quantized_weight().detach()
    d = conv.weight.detach().abs().max() / 127.5
    k = 2 * q / d
    assert torch.allclose(k, torch.round(k), atol=1e-3)
    assert torch.all(torch.round(k).remainder(2) == 1)          # odd: mid-rise grid, no zero
    assert torch.round(k).abs().max() <= 255
    assert int((q == 0).sum()) == 0                             # not pruned
    fc = FixedQuantLinear(6, 3)
    x = torch.rand(2, 6)
    torch.testing.assert_close(fc(x), x @ fc.quantized_weight().T + fc.bias)


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match="prune rate"):
        CompConv(3, 3, 3, 1, 1.0)
    with pytest.raises(ConfigError, match="unknown compconv kind 'mixed'.*shared, naive"):
        make_compconv("mixed", 3, 3, 3)
