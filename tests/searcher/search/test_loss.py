"""Eq. 15's cost weights: relative units divide by the supernet's initial costs, measured without
disturbing it; a relative search logs the absolute weights it used; presets in both units."""
from __future__ import annotations

import pytest
import torch

from lsnn.errors import ConfigError
from lsnn.searcher.presets import PRESETS
from lsnn.searcher.search.loop import SearchConfig, build_supernet, run_search
from lsnn.searcher.search.loss import absolute_weights, initial_costs
from tests.searcher.search.test_loop import cfg, split, stripes


def test_absolute_weights_by_hand():
    assert absolute_weights(0.01, 0.02, "absolute", (1e4, 1e6)) == (0.01, 0.02)
    assert absolute_weights(0.01, 0.02, "relative", (1e4, 1e6)) == pytest.approx((1e-6, 2e-8))


def test_initial_costs_leave_the_supernet_untouched():
    net = build_supernet(SearchConfig(C=4, cells=2, reductions=(1,), T=2), (1, 8, 8), 3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    mem, bs = initial_costs(net, torch.rand(6, 1, 8, 8))
    assert mem > 0 and bs > 0 and not net.training
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_relative_search_uses_weights_over_the_initial_costs(tmp_path):
    x, y = stripes()
    res = run_search(cfg(l1=0.05, l2=0.1, cost_weights="relative"), *split(x, y), tmp_path)
    rec = res.history[0]
    assert rec["l1_abs"] == pytest.approx(0.05 / rec["initial_mem_bits"])
    assert rec["l2_abs"] == pytest.approx(0.1 / rec["initial_bit_synops"])
    ab = run_search(cfg(l1=0.05, l2=0.1), *split(x, y), tmp_path / "abs").history[0]
    assert (ab["l1_abs"], ab["l2_abs"]) == (0.05, 0.1)
    with pytest.raises(ConfigError, match="cost_weights"):
        run_search(cfg(cost_weights="per-bit"), *split(x, y), tmp_path / "bad")


def test_presets_in_both_units():
    m = PRESETS["medium"]
    assert m.weights("absolute") == (5e-10, 5e-14) and m.weights("relative") == (m.l1_rel, m.l2_rel)
    # small charges twice medium's, as in the paper's absolute values
    assert PRESETS["small"].weights("relative") == pytest.approx((2 * m.l1_rel, 2 * m.l2_rel))
    assert PRESETS["large"].weights("relative") == (0.0, 0.0)
