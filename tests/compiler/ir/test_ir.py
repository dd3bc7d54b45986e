"""The compiler IR: round trips for every node kind, validation errors, immutability."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lsnn.compiler.ir import (
    IR_VERSION,
    BatchNorm,
    Graph,
    InputNode,
    Placement,
    Population,
    SparseStats,
    SynapseGroup,
    depths,
)
from lsnn.errors import IRError, LsnnError
from tests.factories.compiler import assert_tree_equal, chain_artifact, compile_graph, skip_concat_artifact


def _roundtrip(node):
    d = node.to_dict()
    back = type(node).from_dict(d)
    assert_tree_equal(back.to_dict(), d)
    return back


def test_input_node_roundtrip_and_defaults():
    n = InputNode(shape=(3, 4, 5), bits=8, offset=(0.1, 0.2, 0.3), span=(1.0, 2.0, 0.5))
    back = _roundtrip(n)
    assert back == n and back.shape == (3, 4, 5) and back.needs_graded
    d = InputNode(shape=[2, 1, 1])
    assert d.offset == (0.0, 0.0) and d.span == (1.0, 1.0)
    assert not InputNode(shape=(1, 2, 2), encoding="binary", bits=1).needs_graded


def test_population_roundtrip_float_and_integer():
    f = Population("p", "lif", (2, 3, 3), scale=0.0123, bias_mant=np.array([1.5, -2.25]), vth_mant=33.0001, depth=2)
    bf = _roundtrip(f)
    assert bf.bias_mant.dtype == np.float64 and bf.vth_mant == 33.0001 and not bf.is_integer
    i = Population("q", "readout", (4, 1, 1), scale=1e-3, bias_mant=np.array([1, -2, 3, 4]), vth_mant=2 ** 23 - 1,
                   dv=0, depth=5)
    bi = _roundtrip(i)
    assert bi.bias_mant.dtype == np.int32 and bi.vth_mant == 2 ** 23 - 1 and bi.is_integer and bi.dv == 0


def test_synapse_roundtrip_every_kind():
    rng = np.random.default_rng(0)
    w = rng.integers(-7, 8, size=(3, 2, 3, 3))
    mask = w != 0
    stats = SparseStats("sparse", nnz=10, synapses=90, dense_synapses=200, fan_in_max=9, fan_out_max=12,
                        index_bits=5, dense_bits=800, sparse_bits=720)
    bn = BatchNorm(gamma=np.ones(3), beta=np.zeros(3), mean=np.arange(3.0), var=np.full(3, 2.0), eps=1e-3)
    for s in (
        SynapseGroup("c", "conv", "input", "p", w, mask=mask, stride=2, padding=1, bits=2, weight_bits=3,
                     weight_exp=0, sign_mode="mixed", delay=4, delta=0.5, stats=stats),
        SynapseGroup("cf", "conv", "a", "p", w * 0.5, bn=bn, dst_channel_offset=3),
        SynapseGroup("d", "dense", "a", "r", np.arange(12).reshape(3, 4) - 6, weight_bits=5, sign_mode="mixed"),
        SynapseGroup("i", "identity", "a", "b", np.asarray(64), weight_bits=1, weight_exp=6, sign_mode="excitatory"),
    ):
        back = _roundtrip(s)
        assert np.array_equal(back.weight, s.weight) and back.weight.dtype == s.weight.dtype
        assert (back.mask is None) == (s.mask is None)
        assert back.stats == s.stats
    assert stats.memory_bits == 720 and stats.sparsity == pytest.approx(0.55)


def test_placement_roundtrip():
    p = Placement(core_population=[0, 0, 1], core_neurons=[10, 5, 3], core_synapses=[100, 50, 9],
                  core_memory_bits=[1000, 500, 90], core_input_axons=[20, 20, 15], core_output_axons=[3, 3, 0],
                  cores_per_chip=2, chips=2)
    back = _roundtrip(p)
    assert back.total_cores == 3 and back.cores_of(0) == 2 and back.core_neurons.dtype == np.int64


@pytest.mark.parametrize("factory", [chain_artifact, skip_concat_artifact])
@pytest.mark.parametrize("upto", ["read_artifact", "quantize"])
def test_graph_roundtrip(factory, upto):
    g = compile_graph(factory(), upto=upto)
    d = g.to_dict()
    assert d["version"] == IR_VERSION
    back = Graph.from_dict(d)
    assert_tree_equal(back.to_dict(), d)
    assert back.stage == ("integer" if upto == "quantize" else "float")


def test_graph_depths_match_hand_computed():
    from tests.factories.compiler import SKIP_CONCAT_DEPTHS

    g = compile_graph(skip_concat_artifact(), upto="read_artifact")
    assert {p.name: p.depth for p in g.populations} == SKIP_CONCAT_DEPTHS
    assert depths(g) == {"input": 0, **SKIP_CONCAT_DEPTHS}


def _chain():
    return compile_graph(chain_artifact(), upto="quantize")


def test_nodes_are_frozen_and_arrays_read_only():
    g = _chain()
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.T = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        g.synapses[0].weight[0, 0, 0, 0] = 1
    with pytest.raises(ValueError):
        g.populations[0].bias_mant[0] = 1
    src = np.array([1.0, 2.0])
    p = Population("p", "lif", (2, 1, 1), 1.0, src, 3.0)
    src[0] = 99.0
    assert p.bias_mant[0] == 1.0


def test_replace_reuses_frozen_arrays():
    g = _chain()
    s = g.synapses[0]
    s2 = dataclasses.replace(s, delay=1)
    assert s2.weight is s.weight and s2.delay == 1 and s.delay == 0


@pytest.mark.parametrize("mutate,match", [
    (lambda g: g.replace(version=2), "IR version 2"),
    (lambda g: g.replace(readout="stem"), "readout 'stem' is not a population of kind 'readout'"),
    (lambda g: g.replace(populations=tuple(reversed(g.populations))), "topological order"),
    (lambda g: g.replace(meta={"x": object()}), "JSON"),
    (lambda g: g.replace(T=0), "'T' must be >= 1"),
    (lambda g: g.replace(synapses=g.synapses[:-1]), "no incoming synapse group"),
    (lambda g: g.replace(synapses=g.synapses + (g.synapses[0],)), "duplicate synapse group name"),
    (lambda g: g.replace(synapses=(dataclasses.replace(g.synapses[0], src="nowhere"),) + g.synapses[1:]),
     "src 'nowhere' is not a population"),
    (lambda g: g.replace(synapses=(dataclasses.replace(g.synapses[0], stride=2),) + g.synapses[1:]),
     "conv output"),
    (lambda g: g.replace(synapses=(dataclasses.replace(g.synapses[0], dst_channel_offset=1),) + g.synapses[1:]),
     "exceed dst"),
    (lambda g: g.replace(synapses=(dataclasses.replace(g.synapses[0], weight=np.asarray(g.synapses[0].weight, float)),)
                         + g.synapses[1:]), "weights must be integers"),
    (lambda g: g.replace(synapses=(dataclasses.replace(g.synapses[0], weight_bits=0),) + g.synapses[1:]),
     "weight_bits must be chosen"),
])
def test_graph_validation_errors(mutate, match):
    with pytest.raises(IRError, match=match) as info:
        mutate(_chain())
    assert isinstance(info.value, ValueError) and isinstance(info.value, LsnnError)


@pytest.mark.parametrize("kwargs,match", [
    (dict(kind="pool"), "'kind' must be one of conv, dense, identity"),
    (dict(weight=np.zeros((2, 2))), "conv weight must have 4 dimensions"),
    (dict(mask=np.ones((2, 1, 3, 3), dtype=np.uint8)), "'mask' must be a bool array"),
    (dict(mask=np.ones((2, 1, 1, 1), dtype=bool)), "mask shape"),
    (dict(mask=np.zeros((2, 1, 3, 3), dtype=bool)), "weights outside the mask are not zero"),
    (dict(sign_mode="both"), "'sign_mode' must be one of"),
    (dict(delay=-1), "'delay' must be >= 0"),
    (dict(stride=0), "'stride' must be >= 1"),
    (dict(weight=np.full((2, 1, 3, 3), np.nan)), "non-finite"),
    (dict(dst="input"), "cannot be the input"),
    (dict(name="a/b"), "without '/'"),
    (dict(bits=True), "'bits' must be an int"),
])
def test_synapse_validation_errors(kwargs, match):
    base = dict(name="s", kind="conv", src="input", dst="p", weight=np.ones((2, 1, 3, 3), dtype=np.int32))
    base.update(kwargs)
    with pytest.raises(IRError, match=match):
        SynapseGroup(**base)


@pytest.mark.parametrize("kwargs,match", [
    (dict(kind="relu"), "'kind' must be one of lif, readout"),
    (dict(shape=(2, 3)), "3 entries"),
    (dict(scale=0.0), "'scale' must be > 0"),
    (dict(bias_mant=np.zeros(3)), r"'bias_mant' must have shape \(2,\)"),
    (dict(du=4096), "'du' must be <= 4095"),
    (dict(name="input"), "not 'input'"),
    (dict(vth_mant=float("inf")), "must be finite"),
])
def test_population_validation_errors(kwargs, match):
    base = dict(name="p", kind="lif", shape=(2, 2, 2), scale=0.1, bias_mant=np.zeros(2), vth_mant=5)
    base.update(kwargs)
    with pytest.raises(IRError, match=match):
        Population(**base)


@pytest.mark.parametrize("kwargs,match", [
    (dict(encoding="analog"), "'encoding' must be one of graded, binary"),
    (dict(encoding="binary", bits=8), "binary input must have bits = 1"),
    (dict(span=(1.0, 0.0)), "'span' must be > 0"),
    (dict(offset=(0.0,)), "one per channel"),
])
def test_input_validation_errors(kwargs, match):
    base = dict(shape=(2, 4, 4))
    base.update(kwargs)
    with pytest.raises(IRError, match=match):
        InputNode(**base)


def test_from_dict_missing_key_and_version():
    d = _chain().to_dict()
    del d["readout"]
    with pytest.raises(IRError, match="missing key 'readout'"):
        Graph.from_dict(d)
    d = _chain().to_dict()
    d["version"] = 99
    with pytest.raises(IRError, match="IR version 99"):
        Graph.from_dict(d)
