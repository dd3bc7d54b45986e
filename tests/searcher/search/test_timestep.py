"""Compressive timestep search (Eq. 14, 16, 17) against hand-computed values."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lsnn.searcher.search.timestep import (
    ce_per_timestep,
    decoded_T,
    prefix_accuracy,
    prefix_mean_logits,
    timestep_ce,
    timestep_weights,
    weighted_spike_count,
)


def test_prefix_mean_logits_hand_values():
    logits = torch.tensor([[[1.0, 0.0]], [[3.0, 2.0]], [[5.0, 10.0]]])   # [T=3, B=1, K=2]
    m = prefix_mean_logits(logits)
    torch.testing.assert_close(m[:, 0], torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 4.0]]))


def test_ce_per_timestep_is_eq16_for_each_t():
    torch.manual_seed(0)
    logits = torch.randn(4, 5, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (5,))
    ce = ce_per_timestep(logits, y)
    for t in range(4):
        assert ce[t].item() == pytest.approx(F.cross_entropy(logits[:t + 1].mean(0), y).item(), rel=1e-12)


def test_timestep_ce_eq17_and_its_psi_gradient():
    # T=2, one sample, K=2: CE(1) = -log softmax([2,0])_0, CE(2) uses the mean [1, 1] -> log 2
    logits = torch.tensor([[[2.0, 0.0]], [[0.0, 2.0]]], dtype=torch.float64)
    y = torch.tensor([0])
    ce1 = math.log(1 + math.exp(-2.0))
    ce2 = math.log(2.0)
    psi = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64, requires_grad=True)   # probs [.25, .75]
    loss = timestep_ce(logits, y, psi)
    assert loss.item() == pytest.approx(0.25 * ce1 + 0.75 * ce2)
    loss.backward()
    # softmax gradient: dL/dpsi_t = p_t (CE(t) - L)
    L = 0.25 * ce1 + 0.75 * ce2
    np.testing.assert_allclose(psi.grad.numpy(), [0.25 * (ce1 - L), 0.75 * (ce2 - L)])


def test_eq14_weights_from_psi_logits():
    psi = torch.log(torch.tensor([1e-12, 1e-12, 1e-12, 1e-12, 0.6, 0.4], dtype=torch.float64))
    w = timestep_weights(torch.softmax(psi, 0))
    torch.testing.assert_close(w, torch.tensor([1, 1, 1, 1, 1, 0.4], dtype=torch.float64), atol=1e-9, rtol=0)
    # S = first five steps fully plus 40 % of step 6
    rates = torch.tensor([0.1, 0.2, 0.1, 0.1, 0.2, 0.5], dtype=torch.float64)
    assert weighted_spike_count(rates, torch.softmax(psi, 0)).item() == pytest.approx(0.7 + 0.4 * 0.5)


def test_prefix_accuracy_and_decoded_T():
    logits = torch.tensor([[[1.0, 0.0], [0.0, 1.0]],
                           [[-3.0, 0.0], [0.0, 1.0]]])   # t=1: both right for y=[0,1]; t=2: sample 0 wrong
    y = torch.tensor([0, 1])
    assert prefix_accuracy(logits, y).tolist() == [2, 1]
    assert decoded_T(torch.tensor([0.1, 0.5, 0.2])) == 2
    assert decoded_T(torch.zeros(4)) == 4                           # uniform psi: no evidence to compress
