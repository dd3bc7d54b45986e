"""DeployNet: topology, deployable quantization, and the central invariant

    eval forward of DeployNet == a forward that reads only the exported artifact (bit for bit).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings

from lsnn.contract.artifact import validate_artifact
from lsnn.errors import ConfigError
from lsnn.searcher.deploy.export import export_artifact
from lsnn.searcher.deploy.layers import SKIP_ONLY_SCALE, ConvGroup
from lsnn.searcher.deploy.net import DeployNet
from lsnn.searcher.space.genotype import CellGene, Genotype
from lsnn.searcher.space.quant import EDMIPS_STEP
from lsnn.searcher.space.random_genotype import genotypes
from tests.factories.deploy_reference import integer_checks, reference_forward
from tests.factories.searcher import E, tiny_genotype, trained_net

# ------------------------------------------------------------------------------------- topology


def test_populations_shapes_and_topological_order():
    g = tiny_genotype()
    net = DeployNet(g)
    names = [p.name for p in net.pops]
    assert names == ["stem", "cell0.pre0", "cell0.pre1"] + [f"cell0.node{j}" for j in range(4)] + \
        ["cell1.pre0", "cell1.pre1"] + [f"cell1.node{j}" for j in range(4)] + \
        ["cell2.pre0", "cell2.pre1"] + [f"cell2.node{j}" for j in range(4)]
    shape = {p.name: p.shape for p in net.pops}
    assert shape["stem"] == (4, 8, 8)
    assert shape["cell0.node0"] == (4, 8, 8)
    assert shape["cell1.pre0"] == (8, 8, 8) and shape["cell1.node0"] == (8, 4, 4)   # reduction: x2 channels, /2
    assert shape["cell2.pre0"] == (8, 4, 4) and shape["cell2.node3"] == (8, 4, 4)   # pre0 stride 2 after it
    assert net.population("cell2.pre0").convs[0].stride == 2
    assert net.population("cell2.pre1").convs[0].stride == 1
    # consumers of a cell output read the concat of its 4 nodes
    assert net.population("cell2.pre0").convs[0].srcs == tuple(f"cell0.node{j}" for j in range(4))
    assert net.population("cell2.pre0").convs[0].src_channels == (4,) * 4
    assert net.readout.srcs == tuple(f"cell2.node{j}" for j in range(4)) and net.readout.hw == (4, 4)
    # reduction cell: edges from inputs 0/1 have stride 2, from nodes stride 1
    n1 = net.population("cell1.node1")
    assert [s.stride for s in n1.skips] == [2] and [c.stride for c in n1.convs] == [1]
    assert net.population("cell1.node0").convs[0].stride == 2
    # bits per cell; stem: widest without Lava overflow (3-channel 8-bit input: 4); FC: 7 (8 hardware bits)
    assert net.population("cell1.node0").bits == 1 and net.population("cell2.node0").bits == 4
    assert net.population("stem").bits == 4 and net.readout.bits == 7
    wide = DeployNet(g, stem_bits=8, fc_bits=8)
    assert wide.population("stem").bits == 8 and wide.readout.bits == 8
    # preprocessing convs are CompConvs of their cell (as in the search space): cell bits, pruned
    assert net.population("cell1.pre0").bits == 1 and net.population("cell1.pre0").convs[0].prune_rate == 0.5
    fixed = DeployNet(g, pre_bits=8)
    assert fixed.population("cell1.pre0").bits == 8 and fixed.population("cell1.pre0").convs[0].scores is None


def test_unused_cell_input_has_no_preprocessing_population():
    cells = (CellGene(False, 2, tuple((E("conv3x3", 1), E("skip", 1 + j)) for j in range(4))),)
    g = Genotype(cells=cells, T=2, C=2, prune_rate=0.0, num_classes=3, input_shape=(1, 5, 5))
    net = DeployNet(g)
    assert "cell0.pre0" not in net.population_names() and "cell0.pre1" in net.population_names()


def test_odd_spatial_sizes_gsc_like():
    """40 x 98 style odd sizes: conv stride 2, 1x1 stride 2 and x[::2] all give ceil(n / 2)."""
    g = tiny_genotype(input_shape=(1, 7, 9), T=2, aux_cell=None)
    net = trained_net(g)
    x = torch.rand(2, 1, 7, 9)
    with torch.no_grad():
        a = net(x)
    assert net.population("cell1.node0").shape == (8, 4, 5)
    assert torch.equal(a, reference_forward(export_artifact(net), x))


def test_train_forward_backward_and_aux():
    g = tiny_genotype()
    torch.manual_seed(0)
    net = DeployNet(g).train()
    x = torch.rand(3, 3, 8, 8)
    out = net.forward_all(x)
    assert out["logits"].shape == (3, 5) and out["logits_t"].shape == (3, 3, 5)
    assert out["aux"] is not None and out["aux"].shape == (3, 5)
    y = torch.tensor([0, 1, 2])
    loss = F.cross_entropy(out["logits"], y) + 0.4 * F.cross_entropy(out["aux"], y)
    loss.backward()
    edge = net.population("cell0.node1").convs[0]
    assert edge.weight.grad is not None and edge.weight.grad.abs().sum() > 0
    assert edge.scores.grad is not None and edge.scores.grad.abs().sum() > 0        # straight-through mask
    assert edge.bn.weight.grad is not None and edge.bn.bias.grad is not None
    assert net.population("stem").lif.vth.grad is not None
    assert net.readout.weight.grad is not None and net.readout.bias.grad is not None
    # BN running statistics were updated by the training forward
    assert not torch.allclose(edge.bn.running_var, torch.ones_like(edge.bn.running_var))
    net.eval()
    with torch.no_grad():
        assert net.forward_all(x)["aux"] is None


def test_frozen_bn_training_forward_is_the_deployed_forward():
    net = trained_net(tiny_genotype())
    x = torch.rand(3, 3, 8, 8)
    with torch.no_grad():
        ev = net(x)
    net.train().set_bn_frozen(True)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    out = net.forward_all(x)
    assert torch.equal(out["logits"], ev)
    out["logits"].sum().backward()                      # differentiable (straight-through) in this mode
    assert net.population("cell2.node0").convs[0].bn.weight.grad is not None
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)   # running stats untouched


def test_stem_runs_once_and_is_constant_over_time():
    net = trained_net(tiny_genotype())
    stem = net.population("stem")
    x = torch.rand(2, 3, 8, 8)
    acts = {"input": net.encode_input(x)}
    with torch.no_grad():
        cur = stem.current(acts, net.T, 2)
    assert cur.shape == (3, 2, 4, 8, 8)
    assert all(torch.equal(cur[0], cur[t]) for t in range(3))


def test_input_quantized_to_8_bits():
    net = trained_net(tiny_genotype())
    x = torch.rand(2, 3, 8, 8)
    xq = torch.round(x * 255) / 255
    jitter = (torch.rand_like(x) - 0.5) * 0.9 / 255         # stays in the same quantization bin
    with torch.no_grad():
        assert torch.equal(net(xq), net((xq + jitter).clamp(0, 1)))
        assert torch.equal(net.encode_input(x), torch.round(x * 255))


# ---------------------------------------------------------------------------------- quantization


def test_bn_fold_equals_conv_then_bn_eval():
    torch.manual_seed(1)
    g = ConvGroup("g", ["a"], [3], 5, 3, 1, 1).double()
    g.bn.running_mean.normal_()
    g.bn.running_var.uniform_(0.2, 3.0)
    g.bn.weight.data.normal_()
    g.bn.bias.data.normal_()
    g.eval()
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    w, b, sf = g.fold()
    ref = g.bn(F.conv2d(x, g.weight, None, 1, 1))
    got = F.conv2d(x, w, None, 1, 1) + b.view(1, -1, 1, 1)
    assert torch.allclose(got, ref, atol=1e-12, rtol=0)
    assert torch.allclose(sf, g.bn.weight / torch.sqrt(g.bn.running_var + g.bn.eps))


def _edmips_ints_numpy(w: np.ndarray, bits: int, delta: float) -> np.ndarray:
    lim = 2 ** bits / 2 - 0.5
    q = np.clip(np.round(w / delta + 0.5) - 0.5, -lim, lim)
    return (2 * q).astype(np.int64)


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_node_population_shares_delta_hand_computed(bits):
    """Two conv groups into one node: Delta_P = step_b * std(concat of folded weights), s_P = Delta/2."""
    nodes = ((E("conv3x3", 0), E("conv3x3", 1)),) + tuple((E("skip", 0), E("skip", 1)) for _ in range(3))
    cells = (CellGene(False, bits, nodes),)
    g = Genotype(cells=cells, T=2, C=3, prune_rate=0.0, num_classes=2, input_shape=(1, 4, 4))
    torch.manual_seed(bits)
    net = DeployNet(g)
    pop = net.population("cell0.node0")
    for c in pop.convs:
        c.bn.running_var.uniform_(0.5, 2.0)
        c.bn.weight.data.uniform_(0.5, 1.5)
    q = pop.quant()
    folds = [(c.weight * (c.bn.weight / torch.sqrt(c.bn.running_var + c.bn.eps)).view(-1, 1, 1, 1)).detach().numpy()
             for c in pop.convs]
    flat = np.concatenate([f.ravel() for f in folds]).astype(np.float64)
    delta = EDMIPS_STEP[bits] * flat.std(ddof=1)
    assert float(q.scale) == pytest.approx(delta / 2, rel=1e-5)
    for f, wi in zip(folds, q.w_int):
        assert np.array_equal(wi.detach().numpy().astype(np.int64), _edmips_ints_numpy(f, bits, float(q.delta)))
        vals = set(np.unique(wi.detach().numpy()).tolist())
        assert vals <= {float(v) for v in range(-(2 ** bits - 1), 2 ** bits, 2)}


def test_fixed_8bit_layers_use_range_rule_and_stem_scale():
    torch.manual_seed(0)
    net = DeployNet(tiny_genotype(), stem_bits=8, fc_bits=8)
    stem = net.population("stem")
    q = stem.quant()
    wf = stem.convs[0].fold()[0].detach()
    delta = float(wf.abs().max()) / 127.5
    assert float(q.delta) == pytest.approx(delta, rel=1e-6)
    assert float(q.scale) == pytest.approx(delta / 2 / 255, rel=1e-6)
    assert float(q.w_int[0].detach().abs().max()) == 255.0  # the largest weight sits on the last level
    fc = net.readout.quant()
    assert float(fc.w_int[0].detach().abs().max()) == 255.0
    assert float(fc.scale) == pytest.approx(float(net.readout.weight.detach().abs().max()) / 127.5 / 2 / 16, rel=1e-6)


def test_default_widths_fit_loihi_integer_ranges():
    """Default stem/FC widths and the bias / threshold clamps keep every integer inside the 8-bit
    weights, 13-bit bias mantissa, 17-bit threshold and 24-bit current of Lava's LIF."""
    net = trained_net(tiny_genotype())
    with torch.no_grad():
        for p in net.pops:
            for c in p.convs:
                c.bn.bias.fill_(50.0)                      # a huge bias: must be clamped
    art = export_artifact(net)
    for s in art["synapses"]:
        if s["kind"] != "identity":
            assert float((s["weight"].double() / s["scale"]).round().abs().max()) <= 127
    for p in art["populations"]:
        b = (p["bias"].double() / p["scale"]).round()
        assert float(b.max()) <= 4095 and float(b.min()) >= -4096
        if p["vth"] is not None:
            assert 0 <= round(p["vth"] / p["scale"]) <= 2 ** 17 - 1
    assert max(float((p["bias"].double() / p["scale"]).round().max()) for p in art["populations"]) == 4095
    stem = [s for s in art["synapses"] if s["name"] == "stem.conv"][0]
    w = (stem["weight"].double() / stem["scale"]).round().abs()
    assert float(w.sum(dim=(1, 2, 3)).max()) * 255 < 2 ** 17     # worst-case stem accumulator


def test_skip_only_population_and_skip_weight():
    net = trained_net(tiny_genotype())
    dt = net.deploy_tensors()
    pops = {p["name"]: p for p in dt["populations"]}
    p = pops["cell0.node2"]                             # skip + skip
    assert float(p["scale"]) == SKIP_ONLY_SCALE and torch.all(p["bias_int"] == 0)
    groups = [gr for gr in dt["groups"] if gr["dst"] == "cell0.node2"]
    assert [gr["kind"] for gr in groups] == ["identity", "identity"] and all(gr["n"] == 64 for gr in groups)
    assert all(float(gr["weight"]) == 1.0 for gr in groups)
    q = net.population("cell0.node0").quant()          # conv + skip: n_P = round(1 / s_P)
    assert q.skip_n == max(1, round(1 / float(q.scale)))


def test_masks_keep_top_k_and_pruned_weights_are_zero():
    net = trained_net(tiny_genotype(prune=0.75))
    for p in net.pops:
        q = p.quant()
        for c, w, m in zip(p.convs, q.w_int, q.masks):
            if c.name.startswith("cell"):
                assert m is not None and int(m.sum()) == round(0.25 * m.numel())
                assert torch.all(w[m == 0] == 0) and torch.all(w[m == 1].remainder(2) == 1)
            else:
                assert m is None and torch.all(w.remainder(2) == 1)   # dense stem, no zero level


def test_thresholds_and_biases_on_the_scale_grid():
    net = trained_net(tiny_genotype())
    for p in net.pops:
        q = p.quant()
        assert torch.equal(q.vth_int, torch.round(q.vth_int)) and torch.equal(q.bias_int, torch.round(q.bias_int))
        assert float(q.vth.detach()) == pytest.approx(float(p.lif.vth.detach()), abs=float(q.scale.detach()) / 2 + 1e-7)


def test_deploy_tensors_are_what_eval_forward_uses():
    """Recompute the eval logits from deploy_tensors() alone (same formulas)."""
    net = trained_net(tiny_genotype())
    dt = net.deploy_tensors()
    art = export_artifact(net)
    # the exported integers are the deploy tensors' integers
    by_name = {s["name"]: s for s in art["synapses"]}
    for gr in dt["groups"]:
        if gr["kind"] == "conv" and gr["name"] in by_name:
            s = by_name[gr["name"]]
            assert torch.equal(torch.round(s["weight"].double() / s["scale"]), gr["w_int"].double())


# ------------------------------------------------------------------------------ central invariant


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eval_forward_equals_artifact_reference_bit_for_bit(dtype):
    g = tiny_genotype()
    net = trained_net(g, dtype=dtype)
    art = export_artifact(net)
    validate_artifact(art)
    assert integer_checks(art) == []
    x = torch.rand(5, 3, 8, 8, dtype=dtype)
    with torch.no_grad():
        out = net.forward_all(x, keep_spikes=True)
    ref, spikes = reference_forward(art, x, dtype=dtype, return_spikes=True)
    assert torch.equal(out["logits"], ref)
    for name, s in spikes.items():
        assert torch.equal(out["spikes"][name], s), name
    rates = np.array([float(v) for v in out["rates"].values()])
    assert rates.max() > 0                                  # something fires


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(genotypes(max_cells=3))
def test_random_genotypes_eval_equals_reference(g):
    net = trained_net(g, steps=1)
    art = export_artifact(net)
    assert integer_checks(art) == []
    x = torch.rand(2, *g.input_shape)
    with torch.no_grad():
        assert torch.equal(net(x), reference_forward(art, x))


def test_bad_input_shape_is_an_error():
    net = DeployNet(tiny_genotype())
    with pytest.raises(ConfigError, match="input must be"):
        net(torch.rand(2, 1, 8, 8))


# ------------------------------------------------------------------ lif_mode="lava": integer-exact


def test_lava_mode_equals_integer_dynamics_bit_for_bit():
    """With lif_mode='lava' the PyTorch eval forward is the chip's integer LIF (SEMANTICS 3), spike for spike."""
    from tests.factories.deploy_reference import integer_reference

    g = tiny_genotype()
    torch.manual_seed(0)
    # stem_bits=4: worst case |a| = 27 * 15 * 255 < 2^17, so Lava's `a << 6` cannot wrap (8-bit: it can)
    net = DeployNet(g, lif_mode="lava", stem_bits=4).train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(4, 3, 8, 8))
        for p in net.pops:
            for c in p.convs:
                c.bn.weight.uniform_(0.5, 1.5)
                c.bn.bias.normal_(0.0, 0.3)
            p.lif.vth.uniform_(0.3, 0.9)
    net.eval()
    art = export_artifact(net)
    assert art["train"]["lif_mode"] == "lava"
    x = torch.rand(6, 3, 8, 8)
    with torch.no_grad():
        out = net.forward_all(x, keep_spikes=True)
    v, spikes, max_a = integer_reference(art, x)
    assert max(max_a.values()) < 2 ** 17                 # no 24-bit wrap of a << 6 in this net
    for name, s in spikes.items():
        assert np.array_equal(out["spikes"][name].numpy().astype(bool), s), name
    ro = art["populations"][-1]
    # readout v = 64 * sum_t (a_t + b) = 64 * T * logits / s_R
    expect = np.round(out["logits"].double().numpy() * net.T * 64 / ro["scale"]).astype(np.int64)
    assert np.array_equal(v, expect)


def test_lava_mode_trains():
    torch.manual_seed(0)
    net = DeployNet(tiny_genotype(), lif_mode="lava").train()
    out = net.forward_all(torch.rand(2, 3, 8, 8))
    (out["logits"].sum() + out["aux"].sum()).backward()
    edge = net.population("cell2.node0").convs[0]
    assert edge.weight.grad is not None and edge.weight.grad.abs().sum() > 0
    assert net.population("cell0.node0").lif.vth.grad is not None
    with pytest.raises(ConfigError, match="lif_mode"):
        DeployNet(tiny_genotype(), lif_mode="bogus")


def test_step_lif_fallback_matches_fused_lif(monkeypatch):
    """Without neuron.fused_lif DeployNet runs neuron.LIF step by step: same forward, same gradients."""
    import lsnn.searcher.deploy.layers as dl

    g = tiny_genotype()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    results = []
    for fused in (dl.fused_lif, None):
        monkeypatch.setattr(dl, "fused_lif", fused)
        torch.manual_seed(0)
        net = DeployNet(g).train()
        out = net.forward_all(x)
        (out["logits"] ** 2).sum().backward()
        results.append((out["logits"].detach(), [p.grad.clone() for p in net.parameters() if p.grad is not None]))
        net.eval()
        with torch.no_grad():
            art = export_artifact(net)
            assert torch.equal(net(x), reference_forward(art, x))
    (la, ga), (lb, gb) = results
    assert torch.equal(la, lb)
    # float rounding only (the surrogate is evaluated in another order; sums over many terms cancel)
    assert len(ga) == len(gb)
    assert all(float((a - b).abs().max()) <= 1e-3 * float(b.abs().max()) + 1e-7 for a, b in zip(ga, gb))


def test_max_safe_stem_bits():
    from lsnn.contract.chip import ACC_LIMIT as LAVA_ACC_LIMIT
    from lsnn.searcher.deploy.layers import max_safe_stem_bits

    assert max_safe_stem_bits(3) == 4 and max_safe_stem_bits(1) == 5
    for c in (1, 2, 3):
        b = max_safe_stem_bits(c)
        assert 9 * c * (2 ** b - 1) * 255 < LAVA_ACC_LIMIT <= 9 * c * (2 ** (b + 1) - 1) * 255


@pytest.mark.parametrize("constant", [False, True])
def test_fused_lif_equals_neuron_lif(constant):
    """The fused recurrence: same spikes as neuron.LIF, same gradients (current and threshold)."""
    from lsnn.searcher.neuron import LIF, LIFParams, fused_lif

    T, B = 4, 3
    torch.manual_seed(0)
    base = torch.rand(B if constant else T * B, 5, 4, 3) * 1.2
    vth = torch.tensor(0.5, requires_grad=True)
    c1 = base.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y1 = fused_lif(c1, vth, T, LIFParams(0.2, 3.0), constant=constant)[0]
    w = torch.randn(y1.shape)
    (y1 * w).sum().backward()
    g1, gv1 = c1.grad.clone(), vth.grad.clone()
    vth.grad = None
    c2 = base.clone().requires_grad_(True)
    cur = c2.unsqueeze(0).expand(T, *c2.shape) if constant else c2.view(T, B, 5, 4, 3)
    y2 = LIF()(cur, vth=vth)
    (y2.reshape(y1.shape) * w).sum().backward()
    assert torch.equal(y1, y2.reshape(y1.shape))
    assert torch.allclose(g1, c2.grad, rtol=1e-5, atol=1e-6) and torch.allclose(gv1, vth.grad, rtol=1e-5, atol=1e-6)


def test_fused_lif_float64_and_single_step():
    from lsnn.searcher.neuron import LIF, LIFParams, fused_lif

    for T in (1, 3):
        base = torch.rand(T * 2, 3, 2, 2, dtype=torch.float64)
        vth = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
        c1 = base.clone().requires_grad_(True)
        y1 = fused_lif(c1, vth, T, LIFParams(0.2, 3.0))[0]
        y1.sum().backward()
        c2 = base.clone().requires_grad_(True)
        vth2 = vth.detach().clone().requires_grad_(True)
        y2 = LIF().double()(c2.view(T, 2, 3, 2, 2), vth=vth2)
        y2.sum().backward()
        assert torch.equal(y1, y2.reshape(y1.shape))
        assert torch.allclose(c1.grad, c2.grad) and torch.allclose(vth.grad, vth2.grad)


def test_lava_readout_wraps_the_current_and_clips_the_potential_like_the_chip():
    from lsnn.searcher.neuron import lava_readout_increments

    def run(a_seq, bias=0.0):
        a = torch.tensor(a_seq, dtype=torch.float64).view(len(a_seq), 1, 1)
        return lava_readout_increments(a, torch.tensor([bias], dtype=torch.float64)).view(-1).tolist()

    # v = 6.4e6, then clip(12.8e6) = 2^23 - 1: increments 100000 and (8388607 - 6400000) / 64
    assert run([100000, 100000]) == [100000.0, (8388607 - 6400000) / 64]
    assert run([-100000, -100000]) == [-100000.0, (-8388607 + 6400000) / 64]
    # a << 6 = 8,960,000 > 2^23: Lava's one-sided wrap subtracts 2^24 -> u = -7,817,216
    assert run([140000]) == [-7817216 / 64]
    assert run([0, 0, 0], bias=10.0) == [10.0, 10.0, 10.0]           # bias << 6 each step
    a = torch.full((3, 2, 4), 100000.0, dtype=torch.float64, requires_grad=True)
    lava_readout_increments(a, torch.zeros(4, dtype=torch.float64)).sum().backward()
    assert torch.equal(a.grad, torch.ones_like(a))                   # straight through



def test_saturated_classes_tie_exactly_and_argmax_takes_the_first_like_the_chip():
    """Two classes reach the 24-bit clip along different increments: their mean logits must be
    the very same float (the chip's potentials are equal; its host takes the first index)."""
    from lsnn.searcher.deploy.layers import Readout

    # one channel of 1,024 positions: wider than the saturation-free fan-in, so one part
    r = Readout("readout", ["a"], [1], (32, 32), 3, clip_lava=True, T=6).eval()
    assert len(r.parts) == 1
    with torch.no_grad():
        r.weight.copy_(torch.tensor([[0.9], [1.0], [-1.0]]))
        r.bias.zero_()
    T, B = 6, 1
    acts = {"a": torch.ones(T * B, 1, 32, 32)}            # every input spikes at every step
    q = r.quant()
    w = q.w_int[0]
    assert w[0, 0] != w[1, 0]                               # different per-step input ...
    logits_t, mean = r.forward_with_mean(acts, T, B)
    v = torch.cumsum(logits_t.double() / q.scale.double() * 64, 0)
    assert v[-1, 0, 0].item() == pytest.approx(2 ** 23 - 1, abs=2)          # ... both saturated (float32 steps)
    assert v[-1, 0, 1].item() == pytest.approx(2 ** 23 - 1, abs=2)
    assert mean[0, 0].item() == mean[0, 1].item()           # bit-identical floats
    assert int(mean.argmax(-1)) == 0
