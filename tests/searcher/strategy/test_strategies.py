"""The strategies' own steps: the hand-designed chain, the fixed choices of the sequential
baseline (and that its Q / T steps follow the cost), the random search's budget and score."""
import numpy as np
import pytest
import torch

from lsnn.errors import ConfigError
from lsnn.searcher.config import build_config
from lsnn.searcher.search.loop import SearchConfig, build_supernet, run_search
from lsnn.searcher.space.supernet import Supernet
from lsnn.searcher.stages import Splits
from lsnn.searcher.strategy.hand import hand_genotype
from lsnn.searcher.strategy.random_search import candidate, n_candidates, score
from lsnn.searcher.strategy.sequential import choose_bits, choose_T, prune_by_magnitude


def _splits(n=40, seed=0):
    r = np.random.default_rng(seed)
    x = r.random((n, 1, 8, 8), dtype=np.float32)
    y = np.arange(n) % 3
    return Splits((x, y), (x[:12], y[:12]), (x[:12], y[:12]), ["a", "b", "c"], (1, 8, 8))


def test_hand_genotype_is_a_conv_chain_at_the_chosen_bits_T_and_p():
    cfg = build_config("digits", {}, {"strategy": "hand", "hand_bits": 2, "T": 3, "cells": 3,
                                      "reductions": [1, 2], "preset": "small"})
    g = hand_genotype(cfg, _splits())
    assert g.T == 3 and g.prune_rate == 0.9 and [c.bits for c in g.cells] == [2, 2, 2]
    assert [c.reduction for c in g.cells] == [False, True, True]
    for c in g.cells:
        assert [[(e.op, e.src) for e in n] for n in c.nodes] == [[("conv3x3", 1)], [("conv3x3", 2)],
                                                                  [("conv3x3", 3)], [("conv3x3", 4)]]


def test_hand_nodes_1_is_one_wide_conv_per_cell_and_the_net_compiles_exactly():
    from lsnn.compiler.pipeline import compile_artifact
    from lsnn.hw_profiles.profile import load_profile
    from lsnn.runtime.emulator import Emulator
    from lsnn.runtime.netgraph import encode_input
    from lsnn.searcher.deploy.export import export_artifact, random_deploy_net

    cfg = build_config("digits", {}, {"strategy": "hand", "hand_nodes": 1, "cells": 3, "reductions": [0, 1],
                                      "C": 4, "T": 2})
    g = hand_genotype(cfg, _splits())
    assert [[[(e.op, e.src) for e in n] for n in c.nodes] for c in g.cells] == [[[("conv3x3", 1)]]] * 3
    assert g.meta["nodes"] == 1
    torch.manual_seed(0)
    with torch.no_grad():
        net, x = random_deploy_net(g, seed=0, batch=6, lif_mode="lava")
        out = net.forward_all(x, keep_spikes=True)
    graph = compile_artifact(export_artifact(net, g), load_profile(target="loihi2")).graph
    em = Emulator(graph).run(encode_input(graph, x.numpy()), record_spikes=True)
    assert np.array_equal(em.predictions, out["logits"].argmax(-1).numpy())
    assert sorted(p.name for p in graph.populations if p.name.startswith("cell")) == [
        "cell0.node0", "cell0.pre1", "cell1.node0", "cell1.pre1", "cell2.node0", "cell2.pre1"]


def _net(T=3):
    torch.manual_seed(0)
    return Supernet((1, 8, 8), 3, C=4, cells=2, reductions=(1,), T=T, prune_rate=0.0)


def test_fixed_choices_are_one_hot_and_outside_both_optimisers():
    net = _net()
    net.fix_choices(bits=4, T=2, masks=True)
    for cell in net.cells:
        assert torch.softmax(cell.beta, 0)[-1] == pytest.approx(1.0, abs=1e-15)
    assert int(torch.argmax(net.psi)) == 1 and torch.softmax(net.psi, 0)[1] == pytest.approx(1.0, abs=1e-15)
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    fixed = [c.beta for c in net.cells] + [net.psi] + [p for n, p in net.named_parameters() if n.endswith(".scores")]
    assert not any(id(p) in arch or id(p) in weights for p in fixed)
    assert all(id(c.alpha) in arch for c in net.cells)
    with pytest.raises(ConfigError, match="bits must be one of"):
        net.fix_choices(bits=3)
    with pytest.raises(ConfigError, match=r"T must be in \[1, 3\]"):
        net.fix_choices(T=4)


def test_a_search_with_fixed_choices_moves_alpha_only(tmp_path):
    d = _splits()
    cfg = SearchConfig(T=2, C=4, cells=2, reductions=(1,), epochs=1, batch_size=20, p=0.0, fixed_bits=4,
                       fixed_T=2, fixed_masks=True, psi_warmup_epochs=0, progress=False, a_lr=0.05)
    init = build_supernet(cfg, (1, 8, 8), 3)
    res = run_search(cfg, d.train, d.val, tmp_path)
    net = res.net
    assert res.genotype.T == 2 and [c.bits for c in res.genotype.cells] == [4, 4]
    assert torch.softmax(net.psi, 0)[1] == pytest.approx(1.0, abs=1e-15)
    for name, p in net.named_parameters():
        if name.endswith(".scores"):
            assert torch.equal(p.detach(), dict(init.named_parameters())[name].detach()), name
    assert all(not torch.equal(c.alpha.detach(), c0.alpha.detach()) for c, c0 in zip(net.cells, init.cells))


def test_magnitude_pruning_keeps_the_largest_weights():
    net = _net()
    prune_by_magnitude(net, 0.75)
    conv = net.cells[0].pre1.conv
    m, w = conv.mask().detach(), conv.weight.detach().abs()
    assert net.prune_rate == 0.75 and conv.prune_rate == 0.75
    assert int(m.sum()) == round(0.25 * w.numel())
    assert float(w[m > 0].min()) >= float(w[m == 0].max())


def test_q_and_t_steps_follow_the_cost_weight():
    d = _splits()
    x, y = torch.from_numpy(d.val[0]), torch.from_numpy(d.val[1])
    net = _net()
    net.fix_choices(bits=4, T=3, masks=True)
    steps = choose_bits(net, x, y, l1=1.0, l2=0.0)                 # a bit costs far more than any CE
    assert [int(torch.argmax(c.beta)) for c in net.cells] == [0, 0]
    assert all(s["1"] < s["2"] < s["4"] for s in steps)
    t = choose_T(net, x, y, l1=0.0, l2=1.0)                          # Bit-SynOps grow with T
    assert int(torch.argmax(net.psi)) == 0 and t["1"] < t["3"]


def test_random_search_budget_candidates_and_score():
    cfg = build_config("digits", {}, {"strategy": "random", "search_epochs": 10, "proxy_epochs": 3})
    assert n_candidates(cfg) == 6
    assert n_candidates(build_config("digits", {}, {"random_candidates": 4})) == 4
    d = _splits()
    a, b = candidate(cfg, d, 0, 0.8), candidate(cfg, d, 1, 0.8)
    assert a == candidate(cfg, d, 0, 0.8) and a != b and a.prune_rate == 0.8
    rows = [{"val_accuracy": 0.9, "model_size_bytes": 100.0, "bit_synops": 10.0},
            {"val_accuracy": 0.8, "model_size_bytes": 50.0, "bit_synops": 5.0}]
    assert score(rows, 0.0, 0.0) == pytest.approx([0.1, 0.2])
    assert score(rows, 0.3, 0.1) == pytest.approx([0.1 + 0.3 + 0.1, 0.2 + 0.15 + 0.05])


@pytest.mark.parametrize("over, message", [({"strategy": "greedy"}, "'strategy' must be one of"),
                                           ({"hand_bits": 3}, "'hand_bits' must be 1, 2 or 4"),
                                           ({"hand_nodes": 0}, "'hand_nodes' must be >= 1, got 0"),
                                           ({"proxy_epochs": 0}, "'proxy_epochs'"),
                                           ({"memory_budget_kb": 0.0}, "'memory_budget_kb' must be > 0")])
def test_bad_strategy_options_name_the_key(over, message):
    with pytest.raises(ConfigError, match=message):
        build_config("digits", {}, over)
