"""Fused LIF, ops, search cell and supernet: equivalence to the reference forms, shapes, costs, gradients."""
import copy

import pytest
import torch

from lsnn import cost_model as cm
from lsnn.errors import ConfigError
from lsnn.searcher.neuron import LIF, FusedLIF
from lsnn.searcher.search.loss import search_loss
from lsnn.searcher.space.cell import SearchCell, edge_list
from lsnn.searcher.space.genotype import OP_NAMES
from lsnn.searcher.space.ops import OPS, Skip, make_op
from lsnn.searcher.space.supernet import Supernet, aux_cell_for, backbone, quantize_input

CL = torch.channels_last


def tiny(save_dtype=None, **kw):
    torch.manual_seed(0)
    args = dict(C=4, cells=3, reductions=(1, 2), T=3, prune_rate=0.5, save_dtype=save_dtype)
    args.update(kw)
    return Supernet((1, 8, 8), 5, **args).double()


# ---------------------------------------------------------------- fused LIF
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_lif_equals_neuron_lif(channels_last):
    torch.manual_seed(0)
    T, B = 5, 3
    x = (torch.randn(T * B, 4, 6, 6, dtype=torch.float64) * 0.8 + 0.3)
    if channels_last:
        x = x.contiguous(memory_format=CL)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref, fused = LIF().double(), FusedLIF().double()
    y1 = ref(x1.view(T, B, 4, 6, 6)).reshape(T * B, 4, 6, 6)
    y2, q = fused.forward_packed(x2, T)
    assert torch.equal(y1, y2)
    assert torch.equal(q.to(torch.float64), y2) and q.dtype == torch.uint8
    assert 0.05 < y2.mean() < 0.95                                  # both regimes exercised
    g = torch.randn_like(y2)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-10, atol=1e-12)
    assert fused.vth.grad.item() == pytest.approx(ref.vth.grad.item(), rel=1e-10)
    assert x2.grad.abs().sum() > 0


def test_fused_lif_constant_current_and_neuron_calling_convention():
    torch.manual_seed(1)
    T, B = 4, 2
    z = torch.randn(B, 3, 5, 5, dtype=torch.float64).contiguous(memory_format=CL)
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    ref, fused = LIF().double(), FusedLIF().double()
    y1 = ref(z1.unsqueeze(0).expand(T, *z.shape))
    y2 = fused(z2, T, constant=True)
    assert torch.equal(y1.reshape(T * B, 3, 5, 5), y2)
    (y1.reshape(T * B, 3, 5, 5) * 1.5).sum().backward()
    (y2 * 1.5).sum().backward()
    torch.testing.assert_close(z2.grad, z1.grad)
    y3 = FusedLIF().double()(z.unsqueeze(0).expand(T, *z.shape).contiguous())   # [T, B, ...] form
    assert torch.equal(y3, y1.detach())


def test_fused_lif_half_state_keeps_spikes_exact():
    torch.manual_seed(2)
    x = torch.randn(12, 4, 5, 5) + 0.4
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y1 = FusedLIF()(x1, 3)
    y2 = FusedLIF(save_dtype=torch.float16)(x2, 3)
    assert torch.equal(y1, y2)                                      # forward is always exact
    y1.sum().backward()
    y2.sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=2e-2, atol=2e-2)


# ---------------------------------------------------------------- ops
def test_op_registry_and_errors():
    assert tuple(OPS) == OP_NAMES
    with pytest.raises(ConfigError, match="unknown op 'sep_conv'.*conv3x3, skip"):
        make_op("sep_conv", 4, 1, 0.5)
    x = torch.randn(2, 3, 5, 5)
    assert torch.equal(Skip(2)(x), x[..., ::2, ::2])
    assert make_op("skip", 4, 1, 0.5)(x) is x
    assert sum(p.numel() for p in make_op("skip", 4, 2, 0.5).parameters()) == 0


# ---------------------------------------------------------------- cell
def test_cell_structure_and_strides():
    cell = SearchCell(8, 12, 6, reduction=True, reduction_prev=True, prune_rate=0.5)
    assert cell.alpha.shape == (14, 2) and cell.beta.shape == (3,)
    assert edge_list()[:5] == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 1)]
    for (i, _), e in zip(cell.edge_src_node, cell.edges):
        assert e.ops["conv3x3"].conv.stride == (2 if i < 2 else 1)
        assert e.ops["skip"].stride == (2 if i < 2 else 1)
    assert cell.pre0.conv.stride == 2 and cell.pre1.conv.stride == 1
    assert cell.pre0.conv.cin == 8 and cell.pre1.conv.cin == 12


@pytest.mark.parametrize("train", [True, False])
def test_fast_path_equals_reference_mixed_ops(train):
    net = tiny(edge_affine=train, T=2)
    ref = copy.deepcopy(net)
    net.train(train)
    ref.train(train)
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 5, (3,))
    o1, o2 = net(x, fast=True), ref(x, fast=False)
    assert torch.equal(o1.logits, o2.logits)
    if not train:
        return
    l1 = search_loss(net, o1, y, 1e-4, 1e-6).total
    l2 = search_loss(ref, o2, y, 1e-4, 1e-6).total
    l1.backward()
    l2.backward()
    for (n, p), (_, q) in zip(net.named_parameters(), ref.named_parameters()):
        assert (p.grad is None) == (q.grad is None), n
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-8, atol=1e-12, msg=n)
    for (n, b), (_, c) in zip(net.named_buffers(), ref.named_buffers()):
        torch.testing.assert_close(b, c, msg=n)
    assert net.cells[0].alpha.grad.abs().sum() > 0 and net.cells[0].beta.grad.abs().sum() > 0


# ---------------------------------------------------------------- supernet
def test_table1_backbones():
    for name, size, expect in (("cifar", (3, 32, 32), [(16, 32), (16, 32), (32, 16), (32, 16), (32, 16),
                                                       (64, 8), (64, 8), (64, 8)]),
                               ("gsc", (1, 40, 98), [(16, 40), (16, 40), (32, 20), (32, 20), (64, 10), (64, 10)])):
        cells, red, aux = backbone(name)
        net = Supernet(size, 10, C=16, cells=cells, reductions=red, T=2)
        assert [(g["c"], g["h_out"]) for g in net.geometry] == expect
        assert aux_cell_for(cells, red) == aux
    assert Supernet((1, 40, 98), 12, C=16, cells=6, reductions=(2, 4), T=2).out_hw == (10, 25)
    assert aux_cell_for(3, (1, 2)) is None
    with pytest.raises(ConfigError, match="unknown backbone 'imagenet'"):
        backbone("imagenet")


def test_forward_shapes_rates_and_stem_runs_once():
    net = tiny()
    seen = []
    net.stem.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    out = net(torch.rand(2, 1, 8, 8, dtype=torch.float64))
    assert out.logits.shape == (3, 2, 5)
    assert seen == [(2, 1, 8, 8)]                                   # on [B], not [T*B]
    assert out.stem_rate.shape == (3,)
    assert [r.shape for r in out.cell_rates] == [(6, 3)] * 3
    assert all(0.0 <= float(r.min()) and float(r.max()) <= 1.0 for r in out.cell_rates)


def test_input_is_quantized_to_8_bits():
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    q = quantize_input(x)
    torch.testing.assert_close(q * 255, torch.round(q * 255))
    assert (q - x).abs().max() <= 0.5 / 255 + 1e-12
    net = tiny().eval()
    assert torch.equal(net(x).logits, net(q).logits)


def test_cost_matches_table_and_hand_value():
    net = tiny(prune_rate=0.5)
    with torch.no_grad():
        for cell in net.cells:
            cell.beta.copy_(torch.tensor([0.0, 100.0, 0.0]))      # b_w = 2
            cell.alpha.copy_(torch.tensor([[100.0, 0.0]]).expand(14, 2))   # conv everywhere
    out = net(torch.rand(2, 1, 8, 8, dtype=torch.float64))
    cost = net.cost(out)
    mem = 8 * 9 * 1 * 4 + 8 * net.fc.cin * 5                      # stem + FC, 8 bits, dense
    for g in net.geometry:
        mem += 2 * 0.5 * (g["c_pp"] * g["c"] + g["c_p"] * g["c"] + 14 * 9 * g["c"] ** 2)
    assert cost["mem_bits"].item() == pytest.approx(mem, rel=1e-9)
    rows, t_eff = net.layer_table(out)
    tot = cm.totals(rows, t_eff)
    assert t_eff == pytest.approx(2.0)                              # uniform psi over 1..3
    assert tot.mem_bits == pytest.approx(cost["mem_bits"].item(), rel=1e-9)
    assert tot.synops == pytest.approx(cost["synops"].item(), rel=1e-9)
    assert tot.bit_synops == pytest.approx(cost["bit_synops"].item(), rel=1e-9)
    assert tot.mults == pytest.approx(cost["mults"].item(), rel=1e-9)
    assert len(rows) == 1 + 3 * 16 + 1


def test_rate_gradient_only_with_differentiable_rate():
    net = tiny()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    w = net.cells[1].pre1.conv.weight
    detached = net.cost(net(x))["bit_synops"]
    assert torch.autograd.grad(detached, w, allow_unused=True)[0] is None
    live = net.cost(net(x, rate_grad=True))["bit_synops"]
    (gw,) = torch.autograd.grad(live, w)
    assert gw.abs().sum() > 0
    beta_g = torch.autograd.grad(net.cost(net(x))["bit_synops"], net.cells[0].beta)[0]
    assert beta_g.abs().sum() > 0                                   # l2 still moves beta


def test_parameter_groups_partition():
    net = tiny()
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert arch.isdisjoint(weights) and arch | weights == {id(p) for p in net.parameters()}
    assert id(net.psi) in arch and id(net.cells[0].edges[0].ops["conv3x3"].conv.scores) in arch
    assert id(net.cells[0].node_lifs[0].vth) in weights and id(net.stem.weight) in weights


def test_bad_configuration_errors():
    with pytest.raises(ConfigError, match="reductions"):
        Supernet((1, 8, 8), 5, C=4, cells=3, reductions=(3,), T=2)
    with pytest.raises(ConfigError, match="input must be"):
        tiny()(torch.rand(2, 3, 8, 8, dtype=torch.float64))


def test_conv_bn_recompute_equals_composition():
    from torch import nn

    from lsnn.searcher.space.ops import conv_bn

    torch.manual_seed(5)
    x = (torch.rand(6, 4, 7, 7, dtype=torch.float64) > 0.6).double().contiguous(memory_format=CL)
    w = torch.randn(8, 4, 3, 3, dtype=torch.float64)
    bn1, bn2 = nn.BatchNorm2d(8).double(), nn.BatchNorm2d(8).double()
    with torch.no_grad():
        bn1.weight.uniform_(0.5, 1.5)
        bn1.bias.uniform_(-0.2, 0.2)
    bn2.load_state_dict(bn1.state_dict())
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    w1, w2 = w.clone().requires_grad_(True), w.clone().requires_grad_(True)
    y1 = conv_bn(x1, None, w1, 2, 1, bn1)
    y2 = bn2(torch.nn.functional.conv2d(x2, w2, None, 2, 1))
    torch.testing.assert_close(y1, y2)
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    for a, b in ((x1.grad, x2.grad), (w1.grad, w2.grad), (bn1.weight.grad, bn2.weight.grad),
                 (bn1.bias.grad, bn2.bias.grad), (bn1.running_mean, bn2.running_mean),
                 (bn1.running_var, bn2.running_var)):
        torch.testing.assert_close(a, b)


def test_bfloat16_convs_track_float32():
    torch.manual_seed(0)
    a = Supernet((1, 8, 8), 5, C=4, cells=3, reductions=(1, 2), T=3, save_dtype=None)
    b = Supernet((1, 8, 8), 5, C=4, cells=3, reductions=(1, 2), T=3, save_dtype=torch.float16,
                 spike_dtype=torch.bfloat16)
    b.load_state_dict(a.state_dict())
    x = torch.rand(8, 1, 8, 8)
    y = torch.randint(0, 5, (8,))
    oa, ob = a(x), b(x)
    assert ob.logits.dtype == torch.float32
    assert torch.equal(oa.stem_rate, ob.stem_rate)                  # the stem stays float32
    torch.testing.assert_close(ob.cell_rates[-1], oa.cell_rates[-1], atol=0.05, rtol=0)
    la, lb = search_loss(a, oa, y, 1e-4, 1e-6).total, search_loss(b, ob, y, 1e-4, 1e-6).total
    assert abs(la.item() - lb.item()) < 0.05
    lb.backward()
    grads = [p.grad for p in b.parameters() if p.grad is not None]
    assert len(grads) == len(list(b.parameters()))                  # every parameter gets a gradient
    assert all(torch.isfinite(g).all() for g in grads)
