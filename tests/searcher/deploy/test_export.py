"""export_artifact / random_artifact: the docs/ARTIFACT.md schema, slicing of concat consumers,
integrality, round trip through model.pt, and random artifacts for the compiler's tests."""
from __future__ import annotations

import random
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from lsnn.contract.artifact import load_artifact, save_artifact, validate_artifact
from lsnn.errors import ConfigError
from lsnn.searcher.deploy.export import export_artifact, random_artifact, random_deploy_net
from lsnn.searcher.space.genotype import Genotype
from lsnn.searcher.space.random_genotype import genotypes, random_genotype
from tests.factories.deploy_reference import integer_checks, reference_forward
from tests.factories.searcher import tiny_genotype, trained_net

TOP_KEYS = {"format", "version", "created_by", "dataset", "input_encoding", "T", "neuron", "genotype", "backbone",
            "populations", "synapses", "metrics", "train"}
POP_KEYS = {"name", "kind", "shape", "scale", "vth", "bias", "tau"}
SYN_KEYS = {"name", "kind", "src", "dst", "weight", "mask", "stride", "padding", "dst_channel_offset", "bits",
            "delta", "scale"}




@pytest.fixture(scope="module")
def net_and_art():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    net = trained_net(tiny_genotype())
    art = export_artifact(net, dataset_info={"name": "toy", "classes": list("abcde")},
                          metrics={"test_accuracy": 0.5, "spike_rates": {"stem": 0.1}},
                          train_info={"seed": 3, "epochs": 7, "batch_size": 50, "preset": "medium", "extra": 1})
    torch.set_num_threads(old)
    return net, art


def test_schema_keys_and_header(net_and_art):
    net, a = net_and_art
    assert set(a) == TOP_KEYS
    assert a["format"] == "lsnn.model" and a["version"] == 1 and a["created_by"].startswith("lsnn ")
    assert a["dataset"] == {"name": "toy", "num_classes": 5, "input_shape": [3, 8, 8], "classes": list("abcde")}
    assert a["input_encoding"] == {"kind": "graded", "bits": 8, "offset": [0.0] * 3, "span": [1.0] * 3}
    assert a["T"] == 3
    assert a["neuron"] == {"model": "lif", "tau": 0.2, "v_reset": 0.0, "surrogate": "dspike", "temperature": 3.0,
                           "du": 4095, "dv": 3277}
    assert a["backbone"] == {"C": 4, "cells": 3, "nodes": 4, "reductions": [1], "stem_bits": 4, "fc_bits": 7,
                             "in_bits": 8}
    assert a["genotype"] == tiny_genotype().to_dict()
    assert a["metrics"]["test_accuracy"] == 0.5 and a["metrics"]["spike_rates"] == {"stem": 0.1}
    assert a["metrics"]["synops"] is None and a["metrics"]["test_accuracy_int"] is None
    assert a["train"]["seed"] == 3 and a["train"]["extra"] == 1 and a["train"]["p"] == 0.5
    for p in a["populations"]:
        assert set(p) == POP_KEYS
        assert isinstance(p["scale"], float) and isinstance(p["bias"], torch.Tensor)
    for s in a["synapses"]:
        assert set(s) == SYN_KEYS and isinstance(s["weight"], torch.Tensor) and s["weight"].dtype == torch.float32
        assert s["dst_channel_offset"] == 0
        assert s["mask"] is None or s["mask"].dtype == torch.bool


def test_populations_topological_and_synapse_sources_precede(net_and_art):
    net, a = net_and_art
    names = [p["name"] for p in a["populations"]]
    assert names == net.population_names() and names[0] == "stem" and names[-1] == "readout"
    pos = {n: i for i, n in enumerate(names)}
    pos["input"] = -1
    for s in a["synapses"]:
        assert pos[s["src"]] < pos[s["dst"]], s["name"]
    ro = a["populations"][-1]
    assert ro["kind"] == "readout" and ro["vth"] is None and ro["tau"] == 0.0 and ro["shape"] == [5, 1, 1]
    assert len({s["name"] for s in a["synapses"]}) == len(a["synapses"])


def test_concat_consumers_get_one_input_slice_per_node(net_and_art):
    net, a = net_and_art
    dt = {g["name"]: g for g in net.deploy_tensors()["groups"]}
    full = dt["cell2.pre0.conv"]["w_int"]                      # reads concat(cell0.node0..3), stride 2
    groups = [s for s in a["synapses"] if s["dst"] == "cell2.pre0"]
    assert [s["name"] for s in groups] == [f"cell2.pre0.from_cell0.node{j}" for j in range(4)]
    for j, s in enumerate(groups):
        assert s["kind"] == "conv" and s["src"] == f"cell0.node{j}" and tuple(s["weight"].shape) == (8, 4, 1, 1)
        assert s["stride"] == 2 and s["padding"] == 0 and s["bits"] == 4          # cell2's bits
        assert s["mask"] is not None and s["mask"].shape == s["weight"].shape
        assert torch.equal(torch.round(s["weight"].double() / s["scale"]), full[:, 4 * j:4 * j + 4].double())


def test_readout_dense_groups_repeat_fc_columns_over_positions(net_and_art):
    net, a = net_and_art
    fc = net.deploy_tensors()["groups"][-1]["w_int"]           # [5, 32]
    groups = [s for s in a["synapses"] if s["dst"] == "readout"]
    assert [s["src"] for s in groups] == [f"cell2.node{j}" for j in range(4)]
    for j, s in enumerate(groups):
        assert s["kind"] == "dense" and tuple(s["weight"].shape) == (5, 8 * 4 * 4)
        w = torch.round(s["weight"].double() / s["scale"]).view(5, 8, 16)
        assert torch.equal(w, fc[:, 8 * j:8 * j + 8].double().unsqueeze(-1).expand(5, 8, 16))
    ro = a["populations"][-1]
    s_fc = float(net.readout.quant().extra["s_fc"])
    assert ro["scale"] == pytest.approx(s_fc / 16, rel=1e-6)


def test_identity_groups(net_and_art):
    _, a = net_and_art
    ids = [s for s in a["synapses"] if s["kind"] == "identity"]
    assert ids and all(s["weight"].shape == () and s["mask"] is None and s["bits"] is None for s in ids)
    red = [s for s in ids if s["dst"].startswith("cell1.") and s["src"] in ("cell1.pre0", "cell1.pre1")]
    assert red and all(s["stride"] == 2 for s in red)


def test_integrality_and_validation(net_and_art):
    _, a = net_and_art
    validate_artifact(a)
    assert integer_checks(a) == []
    pops = {p["name"]: p for p in a["populations"]}
    for s in a["synapses"]:
        assert s["scale"] == pops[s["dst"]]["scale"]
        if s["kind"] != "identity":
            assert s["delta"] == 2 * s["scale"]


def test_round_trip_through_model_pt(net_and_art, tmp_path):
    net, a = net_and_art
    path = save_artifact(a, tmp_path / "model.pt")
    b = load_artifact(path)                                  # weights_only=True
    x = torch.rand(3, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), reference_forward(b, x))


def test_dataset_info_must_match_network(net_and_art):
    net, _ = net_and_art
    with pytest.raises(ConfigError, match="does not match"):
        export_artifact(net, dataset_info={"num_classes": 7})
    with pytest.raises(ConfigError, match="class names"):
        export_artifact(net, dataset_info={"classes": ["a"]})


# ---------------------------------------------------------------------------------- random artifacts


def test_random_artifact_is_valid_fast_and_deterministic():
    g = random_genotype(0, cells=3, reductions=[1], C=4, T_max=3, input_shape=(3, 8, 8), num_classes=4)
    random_artifact(g, seed=0)                               # warm-up (first-call overheads)
    t0 = time.perf_counter()
    a = random_artifact(g, seed=1)
    dt = time.perf_counter() - t0
    assert dt < 1.0, f"random_artifact took {dt:.2f} s"
    validate_artifact(a)
    assert integer_checks(a) == []
    b = random_artifact(g, seed=1)
    c = random_artifact(g, seed=2)
    for s1, s2 in zip(a["synapses"], b["synapses"]):
        assert torch.equal(s1["weight"], s2["weight"])
    assert [p["vth"] for p in a["populations"]] == [p["vth"] for p in b["populations"]]
    assert any(not torch.equal(s1["weight"], s2["weight"]) for s1, s2 in zip(a["synapses"], c["synapses"]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_artifact_fires_at_plausible_rates(seed):
    g = random_genotype(seed, cells=3, C=4, T_max=4, T_min=2, input_shape=(3, 8, 8), num_classes=4)
    net, x = random_deploy_net(g, seed=seed, batch=4)
    a = export_artifact(net)
    # calibration input: each population near its random target in [5 %, 30 %]
    with torch.no_grad():
        cal = np.array([float(v) for v in net.forward_all(x)["rates"].values()])
    assert 0.05 <= np.median(cal) <= 0.30
    assert np.mean((cal >= 0.02) & (cal <= 0.40)) >= 0.8, cal
    # a fresh random input, through the artifact only: still plausible
    x2 = torch.rand(4, *g.input_shape, generator=torch.Generator().manual_seed(99))
    _, spikes = reference_forward(a, x2, return_spikes=True)
    fresh = np.array([float(s.mean()) for s in spikes.values()])
    assert 0.03 <= np.median(fresh) <= 0.40, fresh
    with torch.no_grad():
        assert torch.equal(net(x2), reference_forward(a, x2))


def test_random_artifact_records_rates():
    g = random_genotype(5, cells=2, C=2, input_shape=(1, 6, 6), num_classes=3)
    a = random_artifact(g, seed=5)
    assert set(a["metrics"]["spike_rates"]) == {p["name"] for p in a["populations"][:-1]}
    assert a["dataset"]["name"] == "random" and a["train"]["seed"] == 5


# ---------------------------------------------------------------------------------- random genotypes


@pytest.mark.parametrize("rng", [7, random.Random(7), np.random.default_rng(7)])
def test_random_genotype_is_valid(rng):
    g = random_genotype(rng, cells=8, C=16, T_max=6, input_shape=(3, 32, 32), num_classes=10, aux_cell=5)
    assert g.reductions == (2, 5)                               # DARTS rule by default
    assert 1 <= g.T <= 6 and g.prune_rate in (0.0, 0.5, 0.8, 0.9) and g.aux_cell == 5
    for cell in g.cells:
        assert cell.bits in (1, 2, 4) and len(cell.nodes) == 4
        for j, node in enumerate(cell.nodes):
            srcs = [e.src for e in node]
            assert len(node) == 2 and len(set(srcs)) == 2 and all(0 <= s < 2 + j for s in srcs)
            assert all(e.op in ("conv3x3", "skip") for e in node)
    assert Genotype.from_dict(g.to_dict()) == g


def test_random_genotype_is_deterministic_and_configurable():
    a = random_genotype(3, cells=4, reductions=[0, 3], bits=(2,), p_skip=0.0, prune_rates=(0.7,), T_min=3, T_max=3)
    assert a == random_genotype(3, cells=4, reductions=[0, 3], bits=(2,), p_skip=0.0, prune_rates=(0.7,),
                                T_min=3, T_max=3)
    assert a.reductions == (0, 3) and a.T == 3 and a.prune_rate == 0.7
    assert all(c.bits == 2 and all(e.op == "conv3x3" for n in c.nodes for e in n) for c in a.cells)
    assert random_genotype(1, cells=1).reductions == ()
    with pytest.raises(ConfigError):
        random_genotype(0, cells=3, reductions=[3])
    with pytest.raises(ConfigError):
        random_genotype(0, T_min=3, T_max=2)
    with pytest.raises(ConfigError):
        random_genotype("seed")


@settings(max_examples=10, deadline=None)
@given(genotypes(max_cells=3, C=(1, 2)))
def test_hypothesis_genotypes_export_valid_random_artifacts(g):
    a = random_artifact(g, seed=0, batch=2)
    validate_artifact(a)
    assert integer_checks(a) == []
