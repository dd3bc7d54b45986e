"""split_readout: a readout wider than a core's input axons cut into parts the host adds.

Hand-checked packing, the rewritten graph (masks, offsets, bias in part 0), class scores equal
to the unsplit readout's potentials, the placement's input axons, PyTorch's lava-mode readout
in the same parts equal to the compiled emulator, and Lava equal to the emulator on a split net.
"""
import dataclasses
import random

import numpy as np
import pytest
import torch

from lsnn.compiler.passes.split_readout import split_readout
from lsnn.compiler.pipeline import compile_artifact
from lsnn.contract.readout import plan_parts
from lsnn.hw_profiles.profile import load_profile
from lsnn.runtime.emulator import Emulator, first_difference
from lsnn.runtime.netgraph import encode_input
from lsnn.searcher.deploy.export import export_artifact, random_deploy_net
from lsnn.searcher.deploy.layers import readout_parts
from lsnn.searcher.space.random_genotype import random_genotype
from tests.factories.runtime import _input, calibrate, conv, dense, lif, make_graph, odd_weights, random_input, readout

LOIHI2 = load_profile(target="loihi2")


def _narrow(limit: int):
    return dataclasses.replace(LOIHI2, input_axons_per_core=limit)


def test_plan_parts_hand_cases():
    # sources of 3 x 16, 2 x 16 and 4 x 16 neurons, 48 axons per part
    assert plan_parts([(3, 16), (2, 16), (4, 16)], 48) == [[(0, 0, 3)], [(1, 0, 2), (2, 0, 1)], [(2, 1, 4)]]
    assert plan_parts([(3, 16)], 48) == [[(0, 0, 3)]]
    assert plan_parts([(3, 16)], 40) == [[(0, 0, 2)], [(0, 2, 3)]]        # 2 channels fit, then 1
    assert plan_parts([(1, 64)], 40) is None                                # one channel is too wide


def _readout_graph(T: int = 3, seed: int = 0):
    """input -> A (3x4x4), B (2x4x4) -> readout (4) through two dense groups: 80 source neurons."""
    rng = np.random.default_rng(seed)
    wa, _ = odd_weights(rng, (3, 2, 3, 3), 4)
    wb, _ = odd_weights(rng, (2, 2, 3, 3), 4)
    d1, m1 = odd_weights(rng, (4, 48), 4, keep=0.7)
    d2, _ = odd_weights(rng, (4, 32), 4)
    pops = [lif("A", (3, 4, 4), bias=rng.integers(-5, 5, 3)), lif("B", (2, 4, 4)),
            readout("out", 4, bias=np.array([7, -3, 0, 2]))]
    syns = [conv("in.A", "input", "A", wa), conv("in.B", "input", "B", wb),
            dense("A.out", "A", "out", d1, m1, bits=4), dense("B.out", "B", "out", d2, bits=4)]
    g = make_graph(_input((2, 4, 4), 8), pops, syns, T)
    return calibrate(g, random_input(g, 6, seed), seed)


def test_split_rewrites_the_readout_and_keeps_the_class_scores():
    g = _readout_graph()
    s = split_readout(g, _narrow(40))                    # 80 source neurons -> parts of <= 40
    assert s.readout_parts == 3 and s.num_classes == 4
    ro = s.population("out")
    assert ro.shape == (12, 1, 1)
    assert list(ro.bias_mant) == [7, -3, 0, 2] + [0] * 8   # the bias once, in part 0
    parts = {x.name: x for x in s.synapses if x.dst == "out"}
    # part 0: A ch 0-1 (32 axons); part 1: A ch 2 + B ch 0; part 2: B ch 1
    assert sorted(parts) == ["A.out.part0", "A.out.part1", "B.out.part1", "B.out.part2"]
    assert [parts[n].dst_channel_offset for n in sorted(parts)] == [0, 4, 4, 8]
    cols = parts["A.out.part0"].mask.reshape(4, 3, 16).any(axis=(0, 2))
    assert cols.tolist() == [True, True, False]           # part 0 reads channels 0-1 of A (32 axons)
    x = random_input(g, 7, seed=3)
    whole, split = Emulator(g).run(x), Emulator(s).run(x)
    assert np.array_equal(s.class_scores(split.readout_v), whole.readout_v.astype(np.int64))
    assert np.array_equal(split.predictions, whole.predictions)
    assert split_readout(g, _narrow(80)) is g             # fits: unchanged


def test_split_readout_is_placed_one_part_per_core_and_passes_the_fan_in_rule():
    from lsnn.compiler.passes.check_rules import check_rules
    from lsnn.compiler.passes.delay_balance import delay_balance
    from lsnn.compiler.passes.place import plan_placement
    from lsnn.compiler.passes.sparsify import sparsify

    prof = _narrow(40)
    g = delay_balance(sparsify(split_readout(_readout_graph(), prof), prof), prof)
    check_rules(g, prof)                                   # raises if any core needs > 40 axons
    plan = plan_placement(g, prof)
    i = g.population_index("out")
    axons = plan.placement.core_input_axons[plan.placement.core_population == i]
    assert len(axons) == 3 and axons.max() <= 40
    assert sorted(axons.tolist()) == [16, 32, 32]          # A ch 0-1, A ch 2 + B ch 0, B ch 1 (16)


@pytest.mark.parametrize("seed", range(6))
def test_torch_readout_parts_equal_the_compiled_split_readout(seed):
    r = random.Random(seed)
    g = random_genotype(seed, cells=r.choice([1, 2]), C=r.choice([3, 4]), T_max=4,
                        input_shape=(2, 8, 8), num_classes=r.choice([3, 5]))
    torch.manual_seed(seed)
    probe, _ = random_deploy_net(g, seed=seed, batch=2, lif_mode="lava")
    ro = probe.readout
    fan_in = sum(ro.src_channels) * ro.hw[0] * ro.hw[1]
    limit = max(ro.hw[0] * ro.hw[1], fan_in // 3)           # at least 3 parts
    with torch.no_grad():
        net, x = random_deploy_net(g, seed=seed, batch=6, lif_mode="lava", readout_axon_limit=limit)
        out = net.forward_all(x)
    assert len(net.readout.parts) >= 3
    graph = compile_artifact(export_artifact(net, g), _narrow(limit)).graph
    assert graph.readout_parts == len(net.readout.parts)
    em = Emulator(graph).run(encode_input(graph, x.numpy()))
    assert np.array_equal(em.predictions, out["logits"].argmax(-1).numpy())
    ro_art = [p for p in export_artifact(net, g)["populations"] if p["kind"] == "readout"][0]
    expect = np.round(out["logits"].double().numpy() * net.T * 64 / ro_art["scale"]).astype(np.int64)
    assert np.array_equal(graph.class_scores(em.readout_v), expect)    # sum of parts = PyTorch's v_T


def test_readout_parts_of_the_torch_model():
    idx = readout_parts([3, 2, 4], (4, 4), 48)
    assert [t.tolist() for t in idx] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert [t.tolist() for t in readout_parts([3, 2], (4, 4), None)] == [[0, 1, 2, 3, 4]]
    assert [t.tolist() for t in readout_parts([3, 2], (4, 4), 1000)] == [[0, 1, 2, 3, 4]]


@pytest.mark.lava
def test_lava_equals_emulator_on_a_split_readout():
    from lsnn.compiler.passes.delay_balance import delay_balance
    from lsnn.runtime.lava.client import run_lava

    prof = _narrow(40)
    g = _readout_graph()
    split = delay_balance(split_readout(g, prof), prof)
    assert split.readout_parts == 3
    x = random_input(g, 3, seed=9)
    em = Emulator(split)
    lr = run_lava(split, x)
    assert first_difference(em.to_pipeline(x), lr.trace) is None
    assert np.array_equal(lr.predictions, em.run(x).predictions)


def test_compile_report_says_how_the_readout_was_split():
    from lsnn.compiler.report import format_table

    g0 = random_genotype(1, cells=1, C=4, T_max=3, input_shape=(2, 8, 8), num_classes=3)
    with torch.no_grad():
        net, _ = random_deploy_net(g0, seed=1, batch=2, lif_mode="lava", readout_axon_limit=100)
    art = export_artifact(net, g0)
    assert art["train"]["readout_axon_limit"] == 100
    res = compile_artifact(art, _narrow(100))
    info = res.report["readout_parts"]
    assert info["parts"] == len(net.readout.parts) > 1 and info["matches_training"] is True
    assert "the host adds them before the argmax" in format_table(res.report)
    other = compile_artifact(art, _narrow(200)).report
    assert other["readout_parts"]["matches_training"] is False
    assert "was trained for cores of 100 input axons" in format_table(other)
    # trained for 2,000-axon cores, compiled for 4,096: neither splits this 1,024-input readout
    with torch.no_grad():
        wide, _ = random_deploy_net(g0, seed=1, batch=2, lif_mode="lava", readout_axon_limit=2000)
    assert len(wide.readout.parts) == 1
    same = compile_artifact(export_artifact(wide, g0), _narrow(4096)).report["readout_parts"]
    assert same["parts"] == 1 and same["matches_training"] is True


def test_placement_counts_only_the_parts_a_source_neuron_feeds():
    """A readout part reads a run of channels: a source neuron needs output axons only for the
    part that reads it, not for every part of its population (masked columns reach nothing)."""
    from lsnn.compiler.passes.place import _reach, plan_placement
    from lsnn.compiler.passes.sparsify import sparsify

    prof = _narrow(40)
    s = sparsify(split_readout(_readout_graph(), prof), prof)
    plan = plan_placement(s, prof)
    plans = {p.name: plan.plan_of(p.name) for p in s.populations}
    a_parts = [g for g in s.synapses if g.src == "A" and g.dst == "out"]
    assert len(a_parts) == 2                                   # A's 3 channels: 2 in part 0, 1 in part 1
    reached = np.stack([_reach(s, g, plans) for g in a_parts])          # (group, channel, position)
    assert reached.shape == (2, 3, 16)
    assert (reached[0, :2] >= 1).all() and (reached[0, 2] == 0).all()   # part 0 reads channels 0-1
    assert (reached[1, :2] == 0).all() and (reached[1, 2] >= 1).all()   # part 1 reads channel 2
