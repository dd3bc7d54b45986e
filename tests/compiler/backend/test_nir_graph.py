"""NIR export: the integer graph's wiring, units and dynamics in NIR nodes. At T = 1 a NIR
graph run by forward Euler (dt = 1, from rest) is exact, so a small interpreter of the exported
nodes must reproduce the chip emulator's spikes and readout bit for bit; the LIF coefficients
are checked against the chip's update; the file round-trips through nir.read."""
import numpy as np
import pytest
import torch

from lsnn.compiler.backend.nir_graph import OUTPUT, PARTS_SUM, to_nir, write_nir
from lsnn.compiler.pipeline import compile_artifact
from lsnn.contract.chip import DEFAULT_DV
from lsnn.errors import IRError
from lsnn.hw_profiles.profile import load_profile
from lsnn.runtime.emulator.engine import Emulator
from tests.factories.compiler import chain_artifact, compile_graph, skip_concat_artifact

nir = pytest.importorskip("nir")


def _step(g, x):
    """One Euler step (dt = 1, from rest) of nir.NIRGraph `g` on x [C, H, W]: every node's output."""
    preds = {}
    for a, b in g.edges:
        preds.setdefault(b, []).append(a)
    out = {}

    def value(name):
        if name in out:
            return out[name]
        node = g.nodes[name]
        if isinstance(node, nir.Input):
            out[name] = torch.as_tensor(x, dtype=torch.float64)
            return out[name]
        i = sum(value(p) for p in preds[name])
        if isinstance(node, nir.Conv2d):
            y = torch.nn.functional.conv2d(i[None], torch.as_tensor(node.weight), torch.as_tensor(node.bias),
                                           stride=node.stride, padding=node.padding)[0]
        elif isinstance(node, nir.Flatten):
            y = i.reshape(-1)
        elif isinstance(node, nir.Affine):
            y = torch.as_tensor(node.weight) @ i + torch.as_tensor(node.bias)
        elif isinstance(node, nir.Linear):
            y = torch.as_tensor(node.weight) @ i
        elif isinstance(node, nir.LIF):
            tau, r, leak = (torch.as_tensor(a) for a in (node.tau, node.r, node.v_leak))
            v = (leak + r * i) / tau                      # v0 = 0: v += (v_leak - v + r I) / tau
            y = (v > torch.as_tensor(node.v_threshold)).to(torch.float64)
        elif isinstance(node, nir.I):
            y = torch.as_tensor(node.r) * i
        else:                                             # Output
            y = i
        out[name] = y
        return y

    value(OUTPUT)
    return out


def _graph(artifact, parts=1):
    """The compiled (delay-balanced) graph at T = 1, its readout optionally read as `parts` parts."""
    g = compile_artifact(artifact, load_profile(target="loihi2")).graph.replace(T=1)
    return g if parts == 1 else g.replace(readout_parts=parts)


@pytest.mark.parametrize("artifact, parts", [(skip_concat_artifact(), 1), (chain_artifact(T=1, stem_bits=4), 1),
                                             (skip_concat_artifact(seed=3), 2)])
def test_one_step_of_the_nir_graph_is_the_chip(artifact, parts):
    g = _graph(artifact, parts)
    ng = to_nir(g)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(6,) + g.input.shape).astype(np.int32)
    res = Emulator(g, backend="numpy").run(x, record_spikes=True)
    k = g.population(g.readout).shape[0] // parts
    fired = 0
    for n in range(len(x)):
        vals = _step(ng, x[n])
        for p in g.populations:
            if p.name != g.readout:
                assert np.array_equal(vals[p.name].numpy(), res.spikes[p.name][n, 0]), p.name
                fired += int(res.spikes[p.name][n, 0].sum())
        summed = res.readout_v[n].reshape(parts, k).sum(0)    # Lava's v: 2^bias_exp (64) per unit
        assert np.array_equal(vals[OUTPUT].numpy() * 2 ** g.population(g.readout).bias_exp, summed)
    assert fired > 0                                      # the comparison saw spikes
    assert (PARTS_SUM in ng.nodes) == (parts > 1)


def test_lif_coefficients_are_the_chip_update_and_the_integers_are_kept():
    g = _graph(skip_concat_artifact())
    ng = to_nir(g)
    p = g.population("n1")
    node = ng.nodes["n1"]
    assert isinstance(node, nir.LIF) and node.tau.shape == p.shape
    assert np.all(1.0 - 1.0 / node.tau == 1.0 - DEFAULT_DV / 4096)   # retention 819/4096, exact in float
    assert np.all(node.r / node.tau == 1.0)
    assert np.array_equal(node.v_leak[:, 0, 0] / node.tau[:, 0, 0], p.bias_mant)
    assert np.all(node.v_threshold == p.vth_mant) and np.all(node.v_reset == 0)
    assert node.metadata["dv"] == p.dv and node.metadata["scale"] == p.scale
    skip = ng.nodes["n2.skip"]                             # identity, stride 2: diagonal 1x1 conv
    w = g.synapses[[s.name for s in g.synapses].index("n2.skip")].weight
    assert skip.weight.shape == (4, 4, 1, 1) and tuple(skip.stride) == (2, 2)
    assert np.array_equal(skip.weight[:, :, 0, 0], np.eye(4) * float(w))
    hi = ng.nodes["split.hi"]                              # channel slice 3..5 of 'split'
    assert hi.weight.shape[0] == 6 and not hi.weight[:3].any() and hi.weight[3:].any()


def test_file_round_trip(tmp_path):
    g = _graph(skip_concat_artifact())
    write_nir(g, tmp_path / "m.nir")
    back = nir.read(tmp_path / "m.nir")
    ref = to_nir(g)
    assert set(back.nodes) == set(ref.nodes) and sorted(map(tuple, back.edges)) == sorted(ref.edges)
    for name, node in ref.nodes.items():
        for key in ("weight", "tau", "v_leak", "v_threshold", "r", "bias"):
            if hasattr(node, key):
                assert np.array_equal(np.asarray(getattr(back.nodes[name], key)), np.asarray(getattr(node, key))), name
    assert back.metadata["T"] == 1 and back.metadata["dt"] == 1.0


def test_float_stage_is_refused():
    with pytest.raises(IRError, match="integer stage"):
        to_nir(compile_graph(skip_concat_artifact(), upto="fold"))
