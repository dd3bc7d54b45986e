"""Design rules: one test per rule per bundled profile, asserting the exact violation fields.

Where a bundled profile cannot be broken by a small model (capacity rules need millions of
neurons, every bundled profile allows all sign modes and bias exponent 6), the test tightens
that one limit of the bundled profile with `dataclasses.replace` and keeps every other figure.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lsnn.compiler.frontend import read_artifact
from lsnn.compiler.ir import V_MAX
from lsnn.compiler.passes.check_rules import RULES, check_rules, find_violations
from lsnn.compiler.passes.delay_balance import delay_balance
from lsnn.compiler.passes.fold import fold
from lsnn.compiler.passes.place import plan_placement
from lsnn.compiler.passes.quantize import quantize
from lsnn.compiler.passes.sparsify import sparsify
from lsnn.compiler.rules import Violation
from lsnn.errors import DesignRuleError
from lsnn.hw_profiles import bundled_profiles
from lsnn.hw_profiles.profile import load_profile
from tests.factories.compiler import ArtifactBuilder, chain_artifact, chain_builder, skip_concat_artifact

TARGETS = sorted(bundled_profiles())


@pytest.fixture(params=TARGETS)
def prof(request):
    return load_profile(target=request.param)


def lowered(art, prof):
    return delay_balance(sparsify(quantize(fold(read_artifact(art)), prof)))


def only(violations: list[Violation]) -> tuple:
    assert len(violations) == 1, [v.message for v in violations]
    v = violations[0]
    return (v.rule, v.layer, v.required, v.available)


def raised(graph, prof) -> DesignRuleError:
    with pytest.raises(DesignRuleError) as info:
        check_rules(graph, prof)
    assert info.value.violations == find_violations(graph, prof)
    assert info.value.target == prof.name
    return info.value


def test_bundled_targets():
    assert TARGETS == ["loihi1", "loihi2", "tiny"]


def test_clean_chain_passes_every_target(prof):
    g = lowered(chain_artifact(encoding="binary"), prof)
    assert check_rules(g, prof) is g
    assert find_violations(g, prof) == []


def test_weight_bits(prof):
    b = prof.max_weight_bits
    err = raised(lowered(chain_artifact(encoding="binary", stem_bits=b), prof), prof)
    assert only(err.violations) == ("weight_bits", "stem.conv", b + 1, b)
    assert f"needs {b + 1}-bit mixed weights, searched {b} bits" in err.violations[0].message


def test_weight_exponent(prof):
    g = lowered(chain_artifact(encoding="binary"), prof)
    s = g.synapse("conv1.conv")
    g = g.replace(synapses=tuple(dataclasses.replace(x, weight_exp=prof.weight_exp_max + 1) if x is s else x
                                 for x in g.synapses))
    err = raised(g, prof)
    assert only(err.violations) == ("weight_exponent", "conv1.conv", prof.weight_exp_max + 1, prof.weight_exp_max)


def test_sign_mode(prof):
    narrow = dataclasses.replace(prof, sign_modes=("mixed",))
    g = lowered(skip_concat_artifact(encoding="binary"), prof)
    assert find_violations(g, prof) == []
    v = raised(g, narrow).violations
    assert [(x.rule, x.layer, x.required, x.available) for x in v] == [
        ("sign_mode", "n1.skip", "excitatory", "mixed"), ("sign_mode", "n2.skip", "excitatory", "mixed")]


def test_graded_input(prof):
    if prof.graded_spike_bits == 0:
        bits, fails = 8, True
    else:
        bits = min(24, prof.graded_spike_bits + 1)
        fails = bits > prof.graded_spike_bits
    b = chain_builder()
    b.in_bits = bits
    g = lowered(b.build(), prof)
    if not fails:  # loihi2 carries 24-bit payloads, the widest input the IR allows
        assert find_violations(g, prof) == []
        return
    err = raised(g, prof)
    assert only(err.violations) == ("graded_input", "input", bits, prof.graded_spike_bits)
    if prof.graded_spike_bits == 0:
        assert "binary-only target" in err.violations[0].message


def test_fan_in(prof):
    side = int(np.ceil(np.sqrt(prof.input_axons_per_core + 1)))
    b = ArtifactBuilder((1, side, side), encoding="binary")
    b.population("stem", (1, side, side))
    b.conv("stem.conv", "input", "stem", 1, k=1, bits=2)
    b.population("readout", (3, 1, 1), kind="readout")
    b.dense("readout.fc", "stem", "readout", bits=2)
    err = raised(lowered(b.build(), prof), prof)
    assert only(err.violations) == ("fan_in", "readout", side * side, prof.input_axons_per_core)


def test_fan_out(prof):
    tight = dataclasses.replace(prof, output_axons_per_core=1, max_chips=10_000)
    g = lowered(chain_artifact(encoding="binary"), prof)
    err = raised(g, tight)
    # a stem neuron feeds up to 2 x 2 conv1 positions (3x3, stride 2) x 6 channels, one core each
    assert only(err.violations) == ("fan_out", "stem", 24, 1)
    assert plan_placement(g, tight).plan_of("conv1").block == 1


def _deep_skip(n: int):
    b = ArtifactBuilder((1, 2, 2), encoding="binary")
    prev = "input"
    for i in range(1, n + 1):
        b.population(f"p{i}", (1, 2, 2))
        b.conv(f"p{i}.conv", prev, f"p{i}", 1, k=1, bits=2)
        prev = f"p{i}"
    b.population("readout", (2, 1, 1), kind="readout")
    b.dense(f"readout.p{n}", f"p{n}", "readout", bits=2)
    b.dense("readout.p1", "p1", "readout", bits=2)
    return b.build()


def test_delay(prof):
    n = prof.max_delay + 2     # readout depth n + 1: the edge from p1 needs n - 1 = max_delay + 1 steps
    g = lowered(_deep_skip(n), prof)
    assert g.latency == n + 1
    err = raised(g, prof)
    assert only(err.violations) == ("delay", "readout.p1", prof.max_delay + 1, prof.max_delay)


def test_vth_mantissa_and_readout_exempt(prof):
    b = chain_builder()
    art = b.build()
    conv1 = next(p for p in art["populations"] if p["name"] == "conv1")
    conv1["vth"] = float((prof.vth_max + 1) * conv1["scale"])
    art["input_encoding"] = {"kind": "binary", "bits": 1, "offset": [0.0, 0.0], "span": [1.0, 1.0]}
    g = lowered(art, prof)
    assert g.population("readout").vth_mant == V_MAX > prof.vth_max
    err = raised(g, prof)
    assert only(err.violations) == ("vth_mantissa", "conv1", prof.vth_max + 1, prof.vth_max)


@pytest.mark.parametrize("side", ["high", "low"])
def test_bias_mantissa(prof, side):
    lo, hi = prof.bias_range
    bad = hi + 1 if side == "high" else lo - 1
    art = chain_artifact(encoding="binary")
    stem = art["populations"][0]
    bias = np.array(stem["bias"], dtype=np.float64)
    bias[1] = bad * stem["scale"]
    stem["bias"] = bias
    err = raised(lowered(art, prof), prof)
    assert only(err.violations) == ("bias_mantissa", "stem", bad, hi)


def test_bias_exponent(prof):
    tight = dataclasses.replace(prof, bias_exponent_bits=2)
    err = raised(lowered(chain_artifact(encoding="binary"), prof), tight)
    assert [(v.rule, v.layer, v.required, v.available) for v in err.violations] == [
        ("bias_exponent", name, 6, 3) for name in ("stem", "conv1", "readout")]


def test_state_bits(prof):
    tight = dataclasses.replace(prof, state_bits=16)
    err = raised(lowered(chain_artifact(encoding="binary"), prof), tight)
    assert [(v.rule, v.layer, v.required, v.available) for v in err.violations] == [
        ("state_bits", name, 24, 16) for name in ("stem", "conv1", "readout")]


def test_neuron_memory(prof):
    g = lowered(chain_artifact(encoding="binary"), prof)
    need = 96 * g.synapse("readout.fc").weight_bits          # readout: 6x4x4 inputs, dense encoding
    assert g.synapse("readout.fc").stats.encoding == "dense"
    tight = dataclasses.replace(prof, synaptic_memory_bits_per_core=need - 1, max_chips=10_000)
    err = raised(g, tight)
    assert only(err.violations) == ("neuron_memory", "readout", need, need - 1)


def test_population_and_total_cores(prof):
    tight = dataclasses.replace(prof, cores_per_chip=1, max_chips=1, neurons_per_core=128)
    g = lowered(chain_artifact(encoding="binary"), prof)
    err = raised(g, tight)
    # stem 256 neurons -> 2 cores, conv1 96 -> 1, readout 3 -> 1
    assert [(v.rule, v.layer, v.required, v.available) for v in err.violations] == [
        ("population_cores", "stem", 2, 1), ("total_cores", "network", 4, 1)]


def test_total_cores_only(prof):
    g = lowered(chain_artifact(encoding="binary"), prof)
    total = plan_placement(g, prof).placement.total_cores
    tight = dataclasses.replace(prof, cores_per_chip=total - 1, max_chips=1)
    err = raised(g, tight)
    assert only(err.violations) == ("total_cores", "network", total, total - 1)


def test_all_violations_at_once(prof):
    b = chain_builder(stem_bits=prof.max_weight_bits)
    art = b.build()
    conv1 = next(p for p in art["populations"] if p["name"] == "conv1")
    conv1["vth"] = float((prof.vth_max + 1) * conv1["scale"])
    tight = dataclasses.replace(prof, graded_spike_bits=0, state_bits=16)
    err = raised(lowered(art, prof), tight)
    rules = err.rules()
    assert rules == ["weight_bits", "graded_input", "vth_mantissa", "state_bits", "state_bits", "state_bits"]
    assert [r for r in RULES if r in rules] == list(dict.fromkeys(rules))   # reported in RULES order
    text = str(err)
    assert text.startswith(f"6 design-rule violations for target '{prof.name}':")
    assert text.count("\n") == 6 and "[vth_mantissa] conv1:" in text
