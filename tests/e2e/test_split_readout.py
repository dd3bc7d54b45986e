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
from lsnn.contract.chip import V_MAX
from lsnn.contract.readout import part_limit, plan_parts, saturation_free_inputs
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
    # one group per source into all 12 part neurons; part 0: A ch 0-1 (32 axons), part 1: A ch 2 +
    # B ch 0, part 2: B ch 1
    assert sorted(parts) == ["A.out", "B.out"]
    assert all(x.dst_channel_offset == 0 for x in parts.values())
    assert parts["A.out"].weight.shape == (12, 48) and parts["B.out"].weight.shape == (12, 32)
    # rows of part g (g * 4 .. g * 4 + 3) x source channels: where a part reads
    reads_a = parts["A.out"].mask.reshape(3, 4, 3, 16).any(axis=(1, 3))
    reads_b = parts["B.out"].mask.reshape(3, 4, 2, 16).any(axis=(1, 3))
    assert reads_a.tolist() == [[True, True, False], [False, False, True], [False, False, False]]
    assert reads_b.tolist() == [[False, False], [True, False], [False, True]]
    orig = {x.name: x for x in g.synapses}
    for name, grp in parts.items():      # the parts' rows add back to the unsplit group, mask and all
        back = s.unsplit(grp)
        assert np.array_equal(back.weight, np.where(orig[name].mask if orig[name].mask is not None else True,
                                                    orig[name].weight, 0))
        if orig[name].mask is not None:
            assert np.array_equal(back.mask, orig[name].mask)
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
    idx = readout_parts([3, 2, 4], (4, 4), 48, 3, 127)
    assert [t.tolist() for t in idx] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert [t.tolist() for t in readout_parts([3, 2], (4, 4), None, 3, 127)] == [[0, 1, 2, 3, 4]]
    assert [t.tolist() for t in readout_parts([3, 2], (4, 4), 1000, 3, 127)] == [[0, 1, 2, 3, 4]]
    # 16 x 16 positions: 256 neurons a channel, 311 fit at T = 3 -> one channel a part, axons or not
    assert [t.tolist() for t in readout_parts([3, 2], (16, 16), None, 3, 127)] == [[0], [1], [2], [3], [4]]
    # T = 6 allows 139: one channel alone is wider, so one channel a part (not the whole readout)
    assert len(readout_parts([3, 2], (16, 16), 4096, 6, 127)) == 5
    assert len(readout_parts([3, 2], (16, 16), 4096, 3, 15)) == 1          # 4-bit FC: 2639 fit


def test_saturation_free_fan_in_by_hand():
    # T * ((n * w + 4096) << 6) <= 2^23 - 1: 3 * (311 * 127 + 4096) * 64 = 7,601,856 fits,
    # 3 * (312 * 127 + 4096) * 64 = 8,394,240 does not
    assert saturation_free_inputs(3, 127) == 311
    assert 3 * ((311 * 127 + 4096) << 6) <= V_MAX < 3 * ((312 * 127 + 4096) << 6)
    assert saturation_free_inputs(6, 127) == 139
    assert part_limit(None, 3, 127, 256) == 311 and part_limit(200, 3, 127, 64) == 200
    assert part_limit(4096, 6, 127, 250) == 250                             # at least one channel


def test_a_split_readout_cannot_saturate():
    """A readout of 2,048 source neurons at T = 3 is cut so that no part's worst case reaches the clip."""
    from lsnn.compiler.report import readout_headroom

    g = random_genotype(5, cells=1, C=8, T_max=3, input_shape=(2, 16, 16), num_classes=3)
    g = dataclasses.replace(g, T=3)
    with torch.no_grad():
        net, _ = random_deploy_net(g, seed=5, batch=2, lif_mode="lava", readout_axon_limit=4096)
    graph = compile_artifact(export_artifact(net, g), LOIHI2).graph
    assert graph.readout_parts == len(net.readout.parts) > 1
    head = readout_headroom(graph)
    assert not head["may_saturate"] and head["worst_case_potential"] <= V_MAX


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
    # trained for 2,000-axon cores, compiled for 4,096: both cut this 1,024-input readout where it
    # could saturate, not for axons, so the parts agree
    with torch.no_grad():
        wide, _ = random_deploy_net(g0, seed=1, batch=2, lif_mode="lava", readout_axon_limit=2000)
    assert len(wide.readout.parts) > 1
    same = compile_artifact(export_artifact(wide, g0), _narrow(4096)).report["readout_parts"]
    assert same["parts"] == len(wide.readout.parts) and same["matches_training"] is True


def test_placement_counts_only_the_part_a_source_neuron_feeds():
    """A readout part reads a run of channels: a source neuron needs output axons only for the
    core of the part that reads it, not for every core of the readout."""
    from lsnn.compiler.passes.place import _reach, plan_placement
    from lsnn.compiler.passes.sparsify import sparsify

    prof = _narrow(40)
    s = sparsify(split_readout(_readout_graph(), prof), prof)
    plan = plan_placement(s, prof)
    plans = {p.name: plan.plan_of(p.name) for p in s.populations}
    assert plans["out"].cores == 3                        # one part a core (see the test above)
    a_out = next(g for g in s.synapses if g.name == "A.out")
    reached = _reach(s, a_out, plans)                     # (channel, position)
    assert reached.shape == (3, 16) and (reached == 1).all()
    # a source neuron of a 1-channel part on 1 core reaches 1 core, the unsplit readout on 3 cores
    # would have needed 3 output axons per neuron


def test_emulator_runs_a_split_readout_as_a_sparse_product():
    """The stacked part groups are mostly zeros: the emulator applies them as a sparse matrix,
    with the same integers as the dense product."""
    from lsnn.runtime.emulator.synapse_ops import SynapseOp

    g = _readout_graph()
    many = split_readout(g, _narrow(16))                  # one channel a part: 5 parts, >= 80 % zeros
    assert many.readout_parts == 5
    grp = next(x for x in many.synapses if x.name == "A.out")
    op = SynapseOp(grp, many)
    assert op.sparse_t is not None and op.wmat_int is None
    rng = np.random.default_rng(0)
    x = (rng.random((5, 4, 4, 3)) < 0.4).astype(np.uint8)
    hwc = grp.weight.reshape(20, 3, 4, 4).transpose(0, 2, 3, 1).reshape(20, -1).astype(np.int64)
    want = x.reshape(5, -1).astype(np.int64) @ hwc.T
    assert np.array_equal(op(x).reshape(5, -1), want)
    whole, split = Emulator(g).run(random_input(g, 4, seed=1)), Emulator(many).run(random_input(g, 4, seed=1))
    assert np.array_equal(many.class_scores(split.readout_v), whole.readout_v.astype(np.int64))
