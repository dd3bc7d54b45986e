"""Each compiler pass on its own: hand-computed values, purity (inputs never mutated)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lsnn.compiler.frontend import read_artifact
from lsnn.compiler.ir import V_MAX
from lsnn.compiler.passes.delay_balance import delay_balance
from lsnn.compiler.passes.fold import fold
from lsnn.compiler.passes.place import plan_placement
from lsnn.compiler.passes.quantize import bits_needed, choose_format, quantize, trailing_zeros
from lsnn.compiler.passes.sparsify import sparsify
from lsnn.errors import ArtifactError, DesignRuleError, IRError
from lsnn.hw_profiles.profile import load_profile
from tests.factories.compiler import (
    SKIP_CONCAT_DELAYS,
    ArtifactBuilder,
    assert_tree_equal,
    chain_artifact,
    chain_builder,
    skip_concat_artifact,
    skip_concat_builder,
)

LOIHI2 = load_profile(target="loihi2")


# -- read_artifact ---------------------------------------------------------------------------

def test_read_artifact_units_and_neurons():
    b = chain_builder(seed=2)
    art = b.build()
    g = read_artifact(art)
    assert g.stage == "float" and g.T == 4 and g.readout == "readout"
    assert g.input.shape == (2, 8, 8) and g.input.bits == 8 and g.input.needs_graded
    stem = g.population("stem")
    assert (stem.du, stem.dv, stem.bias_exp, stem.depth) == (4095, 3277, 6, 1)
    assert stem.vth_mant == pytest.approx(b.pop_ints("stem")["vth"], abs=1e-6)
    ro = g.population("readout")
    assert (ro.vth_mant, ro.dv, ro.depth) == (V_MAX, 0, 3)
    w = g.synapse("conv1.conv").weight
    assert w.dtype == np.float64
    np.testing.assert_allclose(w, b.ints()["conv1.conv"], atol=1e-4)
    assert g.meta["metrics"]["synops"] == 4567.0 and g.meta["source"] == "model.pt"


def test_read_artifact_errors():
    art = chain_artifact()
    del art["populations"]
    with pytest.raises(ArtifactError, match="missing key 'populations'"):
        read_artifact(art)
    art = chain_artifact()
    art["synapses"][0]["scale"] *= 2
    with pytest.raises(ArtifactError, match="synapse 'stem.conv': scale .* differs from dst population 'stem'"):
        read_artifact(art)
    art = chain_artifact()
    art["populations"][0]["kind"] = "readout"
    with pytest.raises(ArtifactError, match="exactly one readout population, found 2"):
        read_artifact(art)


# -- purity ----------------------------------------------------------------------------------

@pytest.mark.parametrize("factory", [chain_artifact, skip_concat_artifact])
def test_passes_never_mutate_their_input(factory):
    g0 = read_artifact(factory())
    steps = [fold, lambda g, p: quantize(g, p), sparsify, delay_balance, lambda g, p: plan_placement(g, p) and g]
    g = g0
    for step in steps:
        before = g.to_dict()
        out = step(g, LOIHI2)
        assert_tree_equal(g.to_dict(), before)
        g = out


# -- fold --------------------------------------------------------------------------------------

def _bn_artifact(gamma: float):
    b = chain_builder(seed=4)
    art = b.build()
    entry = next(s for s in art["synapses"] if s["name"] == "conv1.conv")
    s = entry["scale"]
    o = entry["weight"].shape[0]
    entry["bn"] = {"gamma": np.full(o, gamma), "beta": np.full(o, (1 + gamma) * s), "mean": np.full(o, 1 * s),
                   "var": np.full(o, 0.75), "eps": 0.25}     # sqrt(var + eps) = 1 exactly
    return b, art


def test_fold_identity_without_bn():
    g = read_artifact(chain_artifact())
    assert fold(g) is g


def test_fold_hand_computed():
    b, art = _bn_artifact(gamma=2.0)
    g = quantize(fold(read_artifact(art)), LOIHI2)
    # W' = 2 W, bias' = bias + (beta - 2 * mean) / s = bias + (3 - 2) = bias + 1
    assert np.array_equal(g.synapse("conv1.conv").weight, 2 * b.ints()["conv1.conv"])
    assert np.array_equal(g.population("conv1").bias_mant, b.pop_ints("conv1")["bias"] + 1)
    # 2 x odd integers in [-3, 3]: every weight even -> exponent 1, mantissa in [-3, 3] -> 3 mixed bits
    s = g.synapse("conv1.conv")
    assert (s.weight_bits, s.weight_exp, s.sign_mode) == (3, 1, "mixed")


def test_fold_off_grid_is_an_integrality_violation():
    _, art = _bn_artifact(gamma=1.5)   # 1.5 x odd integer = x.5 (the bias shift stays integral: 2.5 - 1.5)
    with pytest.raises(DesignRuleError) as info:
        quantize(fold(read_artifact(art)), LOIHI2)
    (v,) = info.value.violations
    assert (v.rule, v.layer, v.required) == ("integral", "conv1.conv", 1e-4)
    assert v.available == pytest.approx(0.5)
    assert info.value.target == "loihi2"


# -- quantize ----------------------------------------------------------------------------------

def test_quantize_integers_reproduce_weight_over_scale():
    b = skip_concat_builder()
    g = quantize(read_artifact(b.build()), LOIHI2)
    assert g.stage == "integer"
    ints = b.ints()
    for s in g.synapses:
        assert s.weight.dtype == np.int32 and np.array_equal(s.weight, ints[s.name]), s.name
    for p in g.populations:
        assert np.array_equal(p.bias_mant, b.pop_ints(p.name)["bias"])
        if p.kind == "lif":
            assert p.vth_mant == b.pop_ints(p.name)["vth"]


def test_quantize_bit_formats():
    g = quantize(read_artifact(skip_concat_artifact()), LOIHI2)
    fmt = {s.name: (s.weight_bits, s.weight_exp, s.sign_mode) for s in g.synapses}
    assert fmt["stem.conv"] == (8, 0, "mixed")          # searched 7 bits + 1 (EdMIPS grid)
    assert fmt["n0.conv"] == (3, 0, "mixed")            # searched 2 bits + 1
    assert fmt["readout.post"] == (8, 0, "mixed")
    assert fmt["n2.skip"] == (1, 6, "excitatory")       # 64 = 1 << 6 into a skip-only population (s = 1/64)
    n = int(g.synapse("n1.skip").weight)
    tz = (n & -n).bit_length() - 1
    assert fmt["n1.skip"] == (max(1, (n >> tz).bit_length()), tz, "excitatory")


def test_quantize_reports_every_off_grid_layer_at_once():
    art = chain_artifact()
    art["synapses"][0]["weight"] = art["synapses"][0]["weight"] + 0.3 * art["synapses"][0]["scale"]
    art["populations"][1]["vth"] += 0.25 * art["populations"][1]["scale"]
    with pytest.raises(DesignRuleError) as info:
        quantize(read_artifact(art), LOIHI2)
    got = {(v.rule, v.layer): v.available for v in info.value.violations}
    assert set(got) == {("integral", "conv1"), ("integral", "stem.conv")}
    assert got[("integral", "stem.conv")] == pytest.approx(0.3, abs=1e-3)
    assert got[("integral", "conv1")] == pytest.approx(0.25, abs=1e-6)
    with pytest.raises(IRError, match="already integer"):
        quantize(quantize(read_artifact(chain_artifact())))


def test_bit_helpers():
    assert bits_needed(np.array([-4, 3]), "mixed") == 3
    assert bits_needed(np.array([-5, 1]), "mixed") == 4
    assert bits_needed(np.array([-255, 255]), "mixed") == 9
    assert bits_needed(np.array([0, 255]), "excitatory") == 8
    assert bits_needed(np.array([-256]), "inhibitory") == 9
    assert trailing_zeros(np.array([12, -40, 0])) == 2 and trailing_zeros(np.array([0])) == 0
    assert choose_format(np.array([-3, 1, 3]), 2, "conv", LOIHI2) == (3, 0, "mixed")
    assert choose_format(np.array([1, 1]), 2, "conv", LOIHI2) == (2, 0, "excitatory")
    assert choose_format(np.array([128]), None, "identity", LOIHI2) == (1, 7, "excitatory")
    # exponent capped by the profile: 256 = 1 << 8 but loihi2 allows at most 7 -> mantissa 2, 2 bits
    assert choose_format(np.array([256]), None, "identity", LOIHI2) == (2, 7, "excitatory")
    narrow = dataclasses.replace(LOIHI2, weight_bits=(2, 4, 8))
    assert choose_format(np.array([-3, 3]), 2, "conv", narrow) == (4, 0, "mixed")   # 3 bits stored as 4


# -- sparsify ----------------------------------------------------------------------------------

def _one_conv(mask_center_only: bool, stride: int = 1):
    b = ArtifactBuilder((1, 3, 3), encoding="binary")
    h = (3 - 1) // stride + 1
    b.population("p", (1, h, h))
    w = np.array([3, -3] * 5)[:9].reshape(1, 1, 3, 3)   # mixed sign: 2 searched bits -> 3 hardware bits
    if mask_center_only:
        w[:] = 0
        w[0, 0, 1, 1] = 3
    b.conv("p.conv", "input", "p", 1, w_int=w, stride=stride, prune=0.5 if mask_center_only else 0.0, bits=2)
    b.population("readout", (2, 1, 1), kind="readout")
    b.dense("readout.fc", "p", "readout", bits=2)
    return sparsify(quantize(read_artifact(b.build()), LOIHI2))


def test_sparsify_conv_hand_computed():
    g = _one_conv(False)
    st = g.synapse("p.conv").stats
    # 3x3 input, pad 1: valid taps per output row/col = 2, 3, 2 -> 7 x 7 = 49 synapses
    assert (st.nnz, st.synapses, st.dense_synapses, st.fan_in_max, st.fan_out_max) == (9, 49, 49, 9, 9)
    assert st.index_bits == 4 and st.dense_bits == 49 * 3 and st.sparse_bits == 49 * 7 and st.encoding == "dense"
    g = _one_conv(True)
    st = g.synapse("p.conv").stats
    assert (st.nnz, st.synapses, st.dense_synapses, st.fan_in_max, st.fan_out_max) == (1, 9, 49, 1, 1)
    # one kept weight (+3): excitatory, 2 bits; sparse = 9 x (2 + 4) < dense = 49 x 2
    assert g.synapse("p.conv").weight_bits == 2 and g.synapse("p.conv").sign_mode == "excitatory"
    assert st.encoding == "sparse" and st.memory_bits == 9 * 6 and st.sparsity == pytest.approx(40 / 49)
    g = _one_conv(False, stride=2)
    st = g.synapse("p.conv").stats
    # 2x2 outputs at stride 2, pad 1: output 0 reads rows -1..1 (taps 1, 2), output 1 rows 1..3 (taps 0, 1)
    # -> 4 x 4 = 16 synapses, at most 2 x 2 = 4 into one neuron; input row 1 feeds both outputs -> fan-out 4
    assert (st.synapses, st.dense_synapses, st.fan_in_max, st.fan_out_max) == (16, 16, 4, 4)
    ro = g.synapse("readout.fc").stats
    assert (ro.synapses, ro.fan_in_max, ro.fan_out_max) == (8, 4, 2)


def test_sparsify_identity_and_requires_integer():
    g = sparsify(quantize(read_artifact(skip_concat_artifact()), LOIHI2))
    st = g.synapse("n2.skip").stats
    assert (st.synapses, st.dense_synapses, st.fan_in_max, st.dense_bits) == (36, 36, 1, 36)
    with pytest.raises(IRError, match="run quantize first"):
        sparsify(read_artifact(chain_artifact()))


# -- delay_balance -----------------------------------------------------------------------------

def test_delay_balance_skip_concat_hand_computed():
    g = delay_balance(sparsify(quantize(read_artifact(skip_concat_artifact()), LOIHI2)))
    assert {s.name: s.delay for s in g.synapses} == SKIP_CONCAT_DELAYS
    assert g.latency == 6


def test_delay_balance_diamond():
    # input -> a -> b ------------> d -> readout
    #           \-> c -> c2 -> c3 -/
    b = ArtifactBuilder((1, 4, 4), encoding="binary")
    for name in ("a", "b", "c", "c2", "c3", "d"):
        b.population(name, (2, 4, 4))
    b.conv("a.in", "input", "a", 2, bits=2)
    b.conv("b.a", "a", "b", 2, bits=2)
    b.conv("c.a", "a", "c", 2, bits=2)
    b.conv("c2.c", "c", "c2", 2, bits=2)
    b.conv("c3.c2", "c2", "c3", 2, bits=2)
    b.conv("d.b", "b", "d", 2, bits=2)
    b.conv("d.c3", "c3", "d", 2, bits=2)
    b.population("readout", (3, 1, 1), kind="readout")
    b.dense("readout.d", "d", "readout", bits=2)
    b.dense("readout.a", "a", "readout", bits=2)
    g = delay_balance(sparsify(quantize(read_artifact(b.build()), LOIHI2)))
    # depths: a 1, b 2, c 2, c2 3, c3 4, d 5, readout 6
    assert {p.name: p.depth for p in g.populations} == {"a": 1, "b": 2, "c": 2, "c2": 3, "c3": 4, "d": 5,
                                                        "readout": 6}
    assert {s.name: s.delay for s in g.synapses} == {"a.in": 0, "b.a": 0, "c.a": 0, "c2.c": 0, "c3.c2": 0,
                                                     "d.b": 2, "d.c3": 0, "readout.d": 0, "readout.a": 4}
    assert g.latency == 6


# -- place -------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["tiny", "loihi1", "loihi2"])
@pytest.mark.parametrize("factory", [chain_artifact, skip_concat_artifact])
def test_place_conserves_neurons_synapses_memory(target, factory):
    prof = load_profile(target=target)
    g = delay_balance(sparsify(quantize(read_artifact(factory(encoding="binary") if factory is chain_artifact
                                                      else factory()), prof)))
    plan = plan_placement(g, prof)
    pl = plan.placement
    for i, p in enumerate(g.populations):
        m = pl.core_population == i
        groups = g.incoming(p.name)
        assert pl.core_neurons[m].sum() == p.size
        assert pl.core_synapses[m].sum() == sum(s.stats.synapses for s in groups)
        assert pl.core_memory_bits[m].sum() == sum(s.stats.memory_bits for s in groups)
        assert pl.cores_of(i) == plan.plan_of(p.name).cores
    assert pl.chips == -(-pl.total_cores // prof.cores_per_chip)
    assert (pl.core_neurons <= prof.neurons_per_core).all()
    assert (pl.core_memory_bits <= prof.synaptic_memory_bits_per_core).all()
    assert (pl.core_output_axons <= prof.output_axons_per_core).all()


def test_place_tiny_splits_hand_computed():
    prof = load_profile(target="tiny")
    g = delay_balance(sparsify(quantize(read_artifact(chain_artifact(encoding="binary")), prof)))
    pl = plan_placement(g, prof).placement
    # stem: 4 x 8 x 8 = 256 neurons, 128 per core -> 2 cores of 32 positions x 4 channels
    assert list(pl.core_neurons[pl.core_population == 0]) == [128, 128]
    # each stem neuron reaches the one conv1 core: output axons = neurons
    assert list(pl.core_output_axons[pl.core_population == 0]) == [128, 128]
    # first stem core: output rows 0..3 read input rows 0..4 (pad 1) x 8 columns x 2 channels
    assert pl.core_input_axons[0] == 5 * 8 * 2


def _brute_reach(g, s, plan):
    """Distinct destination cores each source neuron's targets lie in (conv, blocks = 1)."""
    dst = g.population(s.dst)
    q = plan.plan_of(s.dst)
    src = g.shape_of(s.src)
    _, _, kh, kw = s.weight.shape
    out = np.zeros((src[1], src[2]), dtype=int)
    for yi in range(src[1]):
        for xi in range(src[2]):
            cores = set()
            for y in range(dst.shape[1]):
                for x in range(dst.shape[2]):
                    dy, dx = yi - (y * s.stride - s.padding), xi - (x * s.stride - s.padding)
                    if 0 <= dy < kh and 0 <= dx < kw:
                        cores.add(int(q.unit_core[y * dst.shape[2] + x]))
            out[yi, xi] = len(cores)
    return out


@pytest.mark.parametrize("stride", [1, 2])
def test_output_axon_reach_matches_brute_force(stride):
    b = ArtifactBuilder((3, 9, 9), encoding="binary")
    b.population("a", (3, 9, 9))
    b.conv("a.in", "input", "a", 3, bits=2)
    h = (9 - 1) // stride + 1
    b.population("b", (20, h, h))
    b.conv("b.a", "a", "b", 20, stride=stride, bits=2)
    b.population("readout", (2, 1, 1), kind="readout")
    b.dense("readout.b", "b", "readout", bits=2)
    prof = load_profile(target="tiny")            # 128 neurons per core: b holds 6 positions per core
    g = delay_balance(sparsify(quantize(read_artifact(b.build()), prof)))
    plan = plan_placement(g, prof)
    assert plan.plan_of("b").blocks == 1 and plan.plan_of("b").cores > 3
    brute = _brute_reach(g, g.synapse("b.a"), plan)
    assert plan.plan_of("a").max_neuron_fan_out == brute.max() + 0  # readout is not reached from a
    pl = plan.placement
    a_core = plan.plan_of("a").unit_core
    want = np.bincount(a_core, weights=np.repeat(brute.reshape(-1), 1) * 3).astype(int)
    assert list(pl.core_output_axons[pl.core_population == 0]) == list(want)
