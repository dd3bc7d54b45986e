"""The integer emulator: hand-computed runs, ideal time vs Lava's schedule, errors (no Lava here)."""
import dataclasses

import numpy as np
import pytest

from lsnn.compiler.ir import InputNode
from lsnn.errors import RuntimeGraphError
from lsnn.runtime.emulator import Emulator, first_difference
from lsnn.runtime.netgraph import encode_input, timing
from tests.factories.runtime import (
    chain_graph,
    concat_graph,
    conv,
    dense,
    lif,
    make_graph,
    random_graph,
    random_input,
    readout,
    reduction_graph,
    skip_graph,
    tiny_graph,
)


def test_hand_computed_tiny_graph():
    g = tiny_graph()
    x = np.array([[[[1, 2], [3, 0]]]], np.int32)
    r = Emulator(g).run(x, record_spikes=True)
    # step 1: a = 3x = [[3,6],[9,0]] -> v = a<<6 = [[192,384],[576,0]] vs 5<<6 = 320 -> spikes at 6 and 9
    # step 2: v(0,0) = (192*819 >> 12) + 192 = 38 + 192 = 230 (no spike); the others fire again
    assert r.spikes["A"][0, :, 0].tolist() == [[[0, 1], [1, 0]], [[0, 1], [1, 0]]]
    assert r.spike_counts["A"].tolist() == [2, 2]
    assert r.spike_maps["A"][0].tolist() == [[0, 2], [2, 0]]
    # readout: W @ [0,1,1,0] = [2, -2]; v = sum over 2 steps of (a + bias) << 6
    assert r.readout_v.tolist() == [[(2 + 1) * 2 * 64, -2 * 2 * 64]]
    assert r.readout_trace[0].tolist() == [[192, -128], [384, -256]]
    assert r.predictions.tolist() == [0]
    assert r.input_events[0].tolist() == [[2, 2], [2, 0]]


def test_pipeline_of_tiny_graph_is_shifted_by_depth():
    g = tiny_graph(T=2)
    em = Emulator(g)
    x = np.array([[[[1, 2], [3, 0]]], [[[0, 0], [0, 3]]]], np.int32)
    tr = em.step_pipeline(x)
    tm = em.timing
    assert (tm.depth["A"], tm.depth["out"], tm.latency) == (1, 2, 2)
    assert tr.num_steps == 2 * 2 + 2
    r = em.run(x, record_spikes=True)
    for k in range(2):
        for t in range(2):
            assert np.array_equal(tr.spikes["A"][k * 2 + t + 1], r.spikes["A"][k, t])   # Lava step kT+t+1+1
    assert np.array_equal(tr.window_v(), r.readout_v)
    assert first_difference(em.to_pipeline(x), tr) is None


@pytest.mark.parametrize("make", [chain_graph, skip_graph, concat_graph, reduction_graph,
                                  lambda: chain_graph(T=1), lambda: chain_graph(bits_in=1, T=4),
                                  lambda: skip_graph(balanced=True), lambda: concat_graph(T=5)])
def test_ideal_time_equals_lavas_schedule_on_hand_graphs(make):
    g = make()
    em = Emulator(g)
    x = random_input(g, 4, seed=11)
    a, b = em.to_pipeline(x), em.step_pipeline(x)
    assert first_difference(a, b) is None
    assert sum(int(s.sum()) for s in a.spikes.values()) > 0


@pytest.mark.parametrize("seed", range(40))
def test_ideal_time_equals_lavas_schedule_on_random_graphs(seed):
    g = random_graph(seed)
    em = Emulator(g)
    x = random_input(g, 3, seed=seed + 100)
    r = em.run(x, record_spikes=True)
    a, b = em.to_pipeline(x, r), em.step_pipeline(x)
    assert first_difference(a, b) is None
    assert np.array_equal(b.window_v(), r.readout_v)
    rates = [r.spike_rate(p.name, p.size) for p in g.populations if p.kind == "lif"]
    assert min(rates) > 0.0  # every layer fires: the comparison is not between silent layers


def test_a_single_flipped_spike_is_reported():
    g = concat_graph()
    em = Emulator(g)
    x = random_input(g, 2, seed=3)
    a = em.to_pipeline(x)
    b = em.to_pipeline(x)
    assert first_difference(a, b) is None
    b.spikes["N1"][5, 1, 2, 3] ^= 1
    msg = first_difference(a, b)
    assert msg is not None and "'N1'" in msg and "step 6" in msg and "(1, 2, 3)" in msg and "1 differences" in msg
    c = em.to_pipeline(x)
    c.readout_v[-1, 0] += 1
    assert "readout v differs" in first_difference(a, c)


def test_a_changed_threshold_changes_the_trace():
    g = chain_graph()
    em = Emulator(g)
    x = random_input(g, 3, seed=5)
    pops = [dataclasses.replace(p, vth_mant=p.vth_mant * 4 // 5) if p.name == "A" else p for p in g.populations]
    em2 = Emulator(g.with_populations(pops))
    assert first_difference(em.to_pipeline(x), em2.to_pipeline(x)) is not None


def test_batching_does_not_change_results():
    g = random_graph(7)
    x = random_input(g, 9, seed=1)
    r1 = Emulator(g, max_batch=1).run(x, record_spikes=True)
    r2 = Emulator(g, max_batch=4).run(x, record_spikes=True)
    assert np.array_equal(r1.readout_trace, r2.readout_trace)
    for p in g.populations:
        assert np.array_equal(r1.spikes[p.name], r2.spikes[p.name])
        assert np.array_equal(r1.spike_maps[p.name], r2.spike_maps[p.name])


def test_wide_identity_and_8bit_weights_stay_exact():
    # identity weight 300 (> one Lava synapse word) and graded 8-bit input: float32 GEMM bound holds
    g = random_graph(0)
    em = Emulator(g)
    for op in em.ops:
        assert op.bound < 2 ** 24 or op.ftype is not np.float32


def test_timing_computed_or_checked():
    g = skip_graph()                       # depths unset: the runtime balances
    tm = timing(g)
    assert tm.depth == {"input": 0, "A": 1, "B": 2, "C": 3, "out": 4}
    assert tm.delay["A.C"] == 1 and tm.delay["B.C"] == 0 and tm.latency == 4
    gb = skip_graph(balanced=True)
    assert timing(gb).delay == tm.delay
    bad = gb.with_synapses([dataclasses.replace(s, delay=0) if s.name == "A.C" else s for s in gb.synapses])
    with pytest.raises(RuntimeGraphError, match="'A.C' is misaligned"):
        Emulator(bad)


def test_errors_are_one_line():
    g = tiny_graph()
    with pytest.raises(RuntimeGraphError, match="stage is 'float'"):
        Emulator(g.replace(stage="float"))
    em = Emulator(g)
    with pytest.raises(RuntimeGraphError, match="does not match the net's input shape"):
        em.run(np.zeros((1, 1, 3, 3), np.int32))
    with pytest.raises(RuntimeGraphError, match=r"outside \[0, 3\]"):
        em.run(np.full((1, 1, 2, 2), 4, np.int32))
    pops = [dataclasses.replace(p, bias_mant=np.array([40000], np.int32)) if p.name == "A" else p
            for p in g.populations]
    with pytest.raises(RuntimeGraphError, match="bias_mant outside int16"):
        Emulator(g.with_populations(pops))


def test_encode_input():
    inp = InputNode(shape=(2, 1, 2), encoding="graded", bits=8, offset=(0.0, 0.5), span=(1.0, 0.5))
    g = make_graph(inp, [lif("A", (1, 1, 2)), readout("out", 2)],
                   [conv("c", "input", "A", np.ones((1, 2, 1, 1), np.int32)),
                    dense("d", "A", "out", np.ones((2, 2), np.int32))], 1)
    x = np.array([[[[0.0, 1.0]], [[0.25, 0.75]]]], np.float32)
    # channel 0: x * 255; channel 1: clip((x - 0.5) / 0.5) * 255 -> [0, 127.5 -> 128 (half to even)]
    assert encode_input(g, x).tolist() == [[[[0, 255]], [[0, 128]]]]
