"""Measured SynOps (runtime.counting): hand-computed fan-out maps and totals, vs the cost model."""
import numpy as np
import pytest

from lsnn.compiler.ir import InputNode
from lsnn.runtime.counting import count, fanout_map
from lsnn.runtime.emulator import Emulator, EmulatorResult
from tests.factories.runtime import conv, dense, identity, lif, make_graph, random_graph, readout, tiny_graph


def _two_layer(hw_src: int, w, mask=None, stride=1, padding=1, kind="conv", T=1):
    """input -> S (1, hw, hw) -> [group under test] -> D -> readout."""
    hd = (hw_src + 2 * padding - w.shape[-1]) // stride + 1 if kind == "conv" else (hw_src - 1) // stride + 1
    inp = InputNode(shape=(1, hw_src, hw_src), encoding="binary", bits=1)
    pops = [lif("S", (1, hw_src, hw_src)), lif("D", (1, hd, hd)), readout("out", 2)]
    g_test = (conv("S.D", "S", "D", w, mask, stride=stride, padding=padding) if kind == "conv"
              else identity("S.D", "S", "D", 7, stride=stride))
    syns = [conv("in.S", "input", "S", np.ones((1, 1, 1, 1), np.int32)), g_test,
            dense("D.out", "D", "out", np.ones((2, hd * hd), np.int32))]
    return make_graph(inp, pops, syns, T=T)


def test_fanout_with_borders_and_mask():
    # 3x3 kernel, padding 1, on 3x3; the mask keeps the centre tap and the top-left tap only.
    mask = np.zeros((1, 1, 3, 3), bool)
    mask[0, 0, 1, 1] = mask[0, 0, 0, 0] = True
    w = np.where(mask, 3, 0).astype(np.int32)
    g = _two_layer(3, w, mask)
    # centre tap: every input feeds its own position once; top-left tap (i=j=0): input (y, x)
    # feeds output (y + 1, x + 1), which exists only for y, x < 2
    assert fanout_map(g, g.synapse("S.D")).tolist() == [[[2, 2, 1], [2, 2, 1], [1, 1, 1]]]
    # all nine taps: corners 4, edges 6, centre 9 (the padding taps reach nothing)
    assert fanout_map(g, g.synapse("S.D"), all_kept=True).tolist() == [[[4, 6, 4], [6, 9, 6], [4, 6, 4]]]


def test_fanout_stride2_conv_and_identity():
    g = _two_layer(5, np.ones((1, 1, 3, 3), np.int32), stride=2, padding=1)
    per_dim = np.array([1, 2, 1, 2, 1])               # taps reaching input row r of a 3x3/s2/p1 conv
    assert np.array_equal(fanout_map(g, g.synapse("S.D"))[0], np.outer(per_dim, per_dim))
    g = _two_layer(5, None, stride=2, kind="identity")
    fan = fanout_map(g, g.synapse("S.D"))[0]
    expect = np.zeros((5, 5), int)
    expect[::2, ::2] = 1                               # odd rows/columns are never read
    assert np.array_equal(fan, expect)
    g = _two_layer(4, np.ones((1, 1, 1, 1), np.int32), stride=2, padding=0)   # 1x1 stride 2 on even size
    expect = np.zeros((4, 4), int)
    expect[::2, ::2] = 1
    assert np.array_equal(fanout_map(g, g.synapse("S.D"))[0], expect)


def _result(graph, maps, T=1, n=1, input_events=None):
    counts = {p.name: np.full(T, maps.get(p.name, np.zeros(p.shape)).sum() / T) for p in graph.populations}
    maps = {p.name: np.asarray(maps.get(p.name, np.zeros(p.shape, np.int64)), np.int64) for p in graph.populations}
    ev = np.zeros(graph.input.shape, np.int64) if input_events is None else input_events
    k = graph.population(graph.readout).shape[0]
    return EmulatorResult(predictions=np.zeros(n, np.int64), readout_v=np.zeros((n, k), np.int32),
                          readout_trace=np.zeros((n, T, k), np.int32), spike_counts=counts, spike_maps=maps,
                          input_events=ev, num_samples=n, T=T)


def test_count_hand_computed_conv_with_borders_and_mask():
    mask = np.zeros((1, 1, 3, 3), bool)
    mask[0, 0, 1, 1] = mask[0, 0, 0, 0] = True
    g = _two_layer(3, np.where(mask, 3, 0).astype(np.int32), mask)
    # every S neuron spiked once in the one step of the one sample
    rep = count(g, _result(g, {"S": np.ones((1, 3, 3))}))
    row = {r.name: r for r in rep.groups}["S.D"]
    assert row.measured_synops == 13                   # sum of [[2,2,1],[2,2,1],[1,1,1]]
    # Eq. 12: (1 - p) * kh kw Cin Cout H W * S with p = 7/9 and S = rate * T = 1
    assert row.nominal_prune == pytest.approx(7 / 9)
    assert row.predicted_synops == pytest.approx(2 / 9 * 81)
    assert row.ratio == pytest.approx(13 / 18)
    assert row.geometry_factor == pytest.approx(49 / 81)          # borders: 49 of 81 taps reach a neuron
    assert row.pruning_factor == pytest.approx((13 / 49) / (2 / 9))
    assert row.synapses == 13 and row.measured_bit_synops == 13 * 4 and row.measured_bit_synops_hw == 13 * 5
    assert "geometry" in row.note and "pruning" in row.note


def test_count_only_spiking_neurons_cost():
    g = _two_layer(3, np.ones((1, 1, 3, 3), np.int32), T=5)
    spikes = np.zeros((1, 3, 3))
    spikes[0, 0, 0] = 3                                # a corner neuron spiked 3 times
    spikes[0, 1, 1] = 2                                # the centre twice
    rep = count(g, _result(g, {"S": spikes}, T=5))
    row = {r.name: r for r in rep.groups}["S.D"]
    assert row.measured_synops == 3 * 4 + 2 * 9
    assert row.src_rate == pytest.approx(5 / (5 * 9))
    assert row.predicted_synops == pytest.approx(81 * (5 / 45) * 5)


def test_count_tiny_graph_end_to_end_with_energy():
    from lsnn.hw_profiles.profile import load_profile

    g = tiny_graph()
    r = Emulator(g).run(np.array([[[[1, 2], [3, 0]]]], np.int32))
    prof = load_profile(target="loihi2")
    rep = count(g, r, prof)
    rows = {x.name: x for x in rep.groups}
    assert rows["in.A"].measured_synops == 6          # 3 non-zero inputs x 2 steps x fan-out 1
    assert rows["in.A"].spike_bits == 2
    assert rows["A.out"].measured_synops == 8         # 4 spikes x 2 non-zero weights each
    assert rows["A.out"].predicted_synops == pytest.approx(8)   # dense readout: exact, ratio 1
    t = rep.totals
    assert t["measured_synops"] == 8 and t["measured_input_events_synops"] == 6
    assert rep.spike_rates["A"] == pytest.approx(0.5) and rep.spikes_per_sample == 4
    assert rep.neuron_updates_per_sample == (4 + 2) * 2
    e = rep.energy
    assert e["measured_pj"] == pytest.approx(14 * prof.energy_synop_pj + 12 * prof.energy_neuron_update_pj
                                             + 4 * prof.energy_spike_pj)


@pytest.mark.parametrize("seed", range(12))
def test_fanout_agrees_with_the_compilers_synapse_statistics(seed):
    """Two independent implementations: our per-neuron fan-out vs the compiler's sparsify pass."""
    from lsnn.compiler.passes.sparsify import group_stats

    g = random_graph(seed)
    for s in g.synapses:
        st = group_stats(g, s)
        fan = fanout_map(g, s)
        assert fan.sum() == st.synapses and fan.max() == st.fan_out_max
        assert fanout_map(g, s, all_kept=True).sum() == st.dense_synapses
