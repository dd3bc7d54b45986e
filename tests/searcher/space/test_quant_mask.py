"""EdMIPS quantizer grid and the top-k pruning mask."""
import pytest
import torch

from lsnn.searcher.space.mask import topk_mask
from lsnn.searcher.space.quant import EDMIPS_STEP, edmips_delta, edmips_quantize, quantize_to_scale, to_grid_integers


def test_edmips_grid_values_hand_computed():
    w = torch.tensor([-1.0, -0.3, 0.0, 0.2, 0.7, 2.0])
    d = torch.tensor(0.5)
    # 2 bits: levels (k - 0.5) * 0.5 for k in {-1, 0, 1, 2} -> -0.75, -0.25, 0.25, 0.75
    q = edmips_quantize(w, 2, d)
    assert q.tolist() == [-0.75, -0.25, 0.25, 0.25, 0.75, 0.75]
    # 1 bit: +-0.25 (sign with no zero level)
    assert edmips_quantize(w, 1, d).tolist() == [-0.25, -0.25, 0.25, 0.25, 0.25, 0.25]


def test_edmips_integers_are_odd_and_bounded():
    torch.manual_seed(0)
    w = torch.randn(1000)
    for b in (1, 2, 4):
        d = edmips_delta(w, b)
        assert abs(d.item() - EDMIPS_STEP[b] * w.std().item()) < 1e-6
        k = to_grid_integers(edmips_quantize(w, b), d.item())
        assert torch.all(k % 2 == 1) or torch.all((k.abs() % 2) == 1)
        assert k.abs().max().item() <= 2 ** b - 1
        assert len(set(k.tolist())) == 2 ** b


def test_edmips_straight_through_gradient():
    w = torch.tensor([0.1, -0.4], requires_grad=True)
    edmips_quantize(w, 2, torch.tensor(0.5)).sum().backward()
    assert w.grad.tolist() == [1.0, 1.0]


def test_range_rule_for_8_bits_covers_max():
    w = torch.tensor([-2.0, 0.5, 1.0])
    d = edmips_delta(w, 8)
    assert abs(d.item() - 2.0 / 127.5) < 1e-7
    assert abs(edmips_quantize(w, 8).abs().max().item() - 127.5 * d.item()) < 1e-6


def test_quantize_to_scale():
    assert quantize_to_scale(torch.tensor([0.26, -0.74]), 0.25).tolist() == [0.25, -0.75]


def test_topk_mask_keeps_largest_scores():
    s = torch.tensor([0.1, -0.9, 0.3, 0.05, -0.4, 0.2, 0.8, -0.01, 0.6, 0.02])
    m = topk_mask(s, 0.7)  # keep 3
    assert m.sum().item() == 3
    assert m.nonzero().flatten().tolist() == [1, 6, 8]
    s.requires_grad_(True)
    (topk_mask(s, 0.5) * torch.arange(10.0)).sum().backward()
    assert s.grad.tolist() == list(range(10))  # straight through


def test_topk_mask_rejects_bad_rate():
    with pytest.raises(ValueError, match="prune rate"):
        topk_mask(torch.ones(4), 1.0)


def test_clip_ste_passes_the_gradient_on_the_closed_range():
    """The bounds themselves get gradient 1 (the outer EdMIPS levels lie on them; newer torch.clamp
    passes none there), outside 0; forward values are torch.clamp's."""
    from lsnn.searcher.space.quant import clip_ste

    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    y = clip_ste(x, -0.5, 0.5)
    y.sum().backward()
    assert y.tolist() == [-0.5, -0.5, 0.0, 0.5, 0.5]
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_one_bit_weights_get_a_gradient():
    """Every kept 1-bit level (+-Delta/2) lies on a bound of the clip: all weights in [-Delta, Delta)
    get gradient 1, the rest 0."""
    w = torch.randn(256, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    edmips_quantize(w, 1).sum().backward()
    d = edmips_delta(w, 1).double()
    inside = ((w >= -d) & (w < d)).double()
    assert torch.equal(w.grad, inside) and inside.sum() > 150
