"""SpikeNAS-style search: the Hamming-kernel score on hand-computed codes, the candidate sets,
the budget shares, and a whole search that keeps its model within the budget."""
import json
import math

import numpy as np
import pytest
import torch

from lsnn.errors import ConfigError
from lsnn.searcher.config import build_config
from lsnn.searcher.stages import Splits
from lsnn.searcher.strategy.hamming_score import agreement_kernel, hamming_score
from lsnn.searcher.strategy.spikenas import (
    Scorer,
    cumulative_limits,
    node_candidates,
    run_spikenas,
    smallest_after,
    start_cell,
)


def test_agreement_kernel_counts_equal_positions():
    codes = torch.tensor([[1, 0, 1, 1], [1, 1, 0, 1], [0, 0, 0, 0]])
    assert agreement_kernel(codes).tolist() == [[4, 2, 1], [2, 4, 1], [1, 1, 4]]


def test_hamming_score_sums_populations_over_steps():
    # population a: T = 2, two inputs, one neuron -> codes [1, 0] and [1, 1]: K_a = [[2, 1], [1, 2]]
    a = torch.tensor([[[1.0], [1.0]], [[0.0], [1.0]]])          # [T=2, B=2, 1]
    # population b: T = 1, codes [0, 1] and [1, 1]: K_b = [[2, 1], [1, 2]]
    b = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])               # [T=1, B=2, 2]
    assert hamming_score([a, b]) == pytest.approx(math.log(4 * 4 - 2 * 2))   # det [[4, 2], [2, 4]] = 12
    assert hamming_score([a[:, [0, 0]]]) == -math.inf                       # identical codes: singular
    with pytest.raises(ValueError):
        hamming_score([])


@pytest.mark.parametrize("j, n", [(0, 4), (1, 12), (2, 24), (3, 40)])
def test_node_candidates_are_every_source_pair_and_op_pair(j, n):
    cands = node_candidates(j)
    assert len(cands) == len(set(cands)) == n
    assert all(a.src < b.src < 2 + j for a, b in cands)


def _splits(n=48, seed=0):
    r = np.random.default_rng(seed)
    x = r.random((n, 1, 8, 8), dtype=np.float32)
    y = np.arange(n) % 3
    return Splits((x, y), (x[:12], y[:12]), (x[:12], y[:12]), ["a", "b", "c"], (1, 8, 8))


def _cfg(**over):
    return build_config("digits", {}, {"strategy": "spikenas", "C": 4, "C_retrain": 4, "cells": 2,
                                       "reductions": [1], "T": 2, "batch_size": 16, **over})


def _start(cfg, data):
    from lsnn.searcher.space.genotype import Genotype

    return Genotype(cells=(start_cell(False, 4), start_cell(True, 4)), T=2, C=4, prune_rate=0.5,
                    num_classes=3, input_shape=(1, 8, 8))


def test_smallest_after_keeps_what_is_decided_and_skips_the_rest():
    g = _start(_cfg(), _splits())
    s = smallest_after(g, 0, 1)
    assert s.cells[0].bits == 1 and s.cells[0].nodes[:2] == g.cells[0].nodes[:2]
    assert all(e.op == "skip" for node in s.cells[0].nodes[2:] + s.cells[1].nodes for e in node)
    assert smallest_after(g, 2, -1) == g                            # everything decided: unchanged


def test_budget_shares_end_at_the_budget_and_a_too_small_one_is_an_error():
    cfg, data = _cfg(), _splits()
    g, scorer = _start(cfg, data), Scorer(cfg, data)
    floor = scorer.size(smallest_after(g, 0, -1))
    limits = cumulative_limits(g, scorer, floor + 1000.0)
    assert floor < limits[0] < limits[1] == pytest.approx(floor + 1000.0)
    with pytest.raises(ConfigError, match="memory_budget_kb .* smallest net of this space"):
        cumulative_limits(g, scorer, floor - 1.0)


@pytest.mark.slow
def test_search_keeps_the_model_within_the_budget_and_is_deterministic(tmp_path):
    data = _splits()
    cfg = _cfg()
    scorer = Scorer(cfg, data)
    floor = scorer.size(smallest_after(_start(cfg, data), 0, -1))
    budget = floor + 0.1 * (scorer.size(_start(cfg, data)) - floor)     # 10 % of the way to the largest
    cfg = _cfg(memory_budget_kb=budget / 1000)
    g = run_spikenas(cfg, data, tmp_path, False, lambda s: None)
    log = json.loads((tmp_path / "spikenas.json").read_text())
    assert log["model_size_bytes"] == Scorer(cfg, data).size(g) <= budget
    assert len(log["candidates"]) == 2 * (4 + 12 + 24 + 40)
    assert any(not c["fits"] for c in log["candidates"])           # the budget did exclude some
    assert g == run_spikenas(cfg, data, tmp_path / "again", False, lambda s: None)
    unbounded = run_spikenas(_cfg(), data, tmp_path / "free", False, lambda s: None)
    assert [c.bits for c in unbounded.cells] == [4, 4]
