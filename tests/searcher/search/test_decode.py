"""Decoding alpha/beta/psi into a Genotype (two strongest edges per node, strongest op, argmax bits and T)."""
import numpy as np
import pytest
import torch

from lsnn.errors import ConfigError
from lsnn.searcher.search.decode import decode, decode_arrays, decode_cell, extract_masks
from lsnn.searcher.space.cell import edge_list
from lsnn.searcher.space.genotype import Edge, Genotype
from lsnn.searcher.space.supernet import Supernet


def crafted_alpha() -> np.ndarray:
    """Logits [14, 2] (conv, skip) with a known decode."""
    a = np.zeros((14, 2))
    idx = {e: k for k, e in enumerate(edge_list())}
    a[idx[(0, 0)]] = [2.0, 0.0]     # node 0: both inputs kept; x0 conv, x1 skip
    a[idx[(1, 0)]] = [0.0, 1.0]
    a[idx[(0, 1)]] = [0.1, 0.0]     # node 1: strongest x2 (conv, p=.95), then x1 (skip, p=.73)
    a[idx[(1, 1)]] = [0.0, 1.0]
    a[idx[(2, 1)]] = [3.0, 0.0]
    a[idx[(3, 2)]] = [0.0, 2.0]     # node 2: x3 skip (p=.88); then tie x0/x1/x2 at .5 -> lower index x0
    a[idx[(4, 3)]] = [5.0, 0.0]     # node 3: x4 conv, x2 skip
    a[idx[(2, 3)]] = [0.0, 4.0]
    return a


def test_decode_cell_keeps_two_strongest_edges_and_ops():
    gene = decode_cell(crafted_alpha(), [0.0, 0.5, 3.0], reduction=False)
    assert gene.bits == 4 and not gene.reduction
    assert gene.nodes[0] == (Edge("conv3x3", 0), Edge("skip", 1))
    assert gene.nodes[1] == (Edge("skip", 1), Edge("conv3x3", 2))
    assert gene.nodes[2] == (Edge("conv3x3", 0), Edge("skip", 3))   # tie at .5 -> conv (first op), x0
    assert gene.nodes[3] == (Edge("skip", 2), Edge("conv3x3", 4))
    assert all(len(n) == 2 for n in gene.nodes)


def test_max_skips_keeps_the_most_likely_skips_and_converts_the_rest():
    """crafted_alpha decodes to 4 skips: x3->2 (p .88), x2->3 (.98), x1->0 and x1->1 (.73 each)."""
    free = decode_cell(crafted_alpha(), [0, 0, 1], reduction=False)
    assert sum(e.op == "skip" for n in free.nodes for e in n) == 4
    two = decode_cell(crafted_alpha(), [0, 0, 1], reduction=False, max_skips=2)
    assert two.nodes == ((Edge("conv3x3", 0), Edge("conv3x3", 1)), (Edge("conv3x3", 1), Edge("conv3x3", 2)),
                         (Edge("conv3x3", 0), Edge("skip", 3)), (Edge("skip", 2), Edge("conv3x3", 4)))
    three = decode_cell(crafted_alpha(), [0, 0, 1], reduction=False, max_skips=3)   # tie: the lower edge index stays
    assert three.nodes[0] == (Edge("conv3x3", 0), Edge("skip", 1))
    assert three.nodes[1] == (Edge("conv3x3", 1), Edge("conv3x3", 2))
    assert decode_cell(crafted_alpha(), [0, 0, 1], reduction=False, max_skips=4) == free
    none = decode_cell(crafted_alpha(), [0, 0, 1], reduction=False, max_skips=0)
    assert all(e.op == "conv3x3" for n in none.nodes for e in n)
    g = decode_arrays([crafted_alpha()] * 2, [[0, 0, 1]] * 2, [0.0, 1.0], reductions=[1], C=4, prune_rate=0.5,
                      num_classes=3, input_shape=(1, 8, 8), max_skips=2)
    assert all(c.nodes == two.nodes for c in g.cells)


def test_decode_arrays_T_bits_aux_and_roundtrip():
    psi = [0.0, 0.2, 1.5, 0.3]
    g = decode_arrays([crafted_alpha()] * 3, [[5, 0, 0], [0, 5, 0], [0, 0, 5]], psi, reductions=[1], C=8,
                      prune_rate=0.8, num_classes=10, input_shape=(3, 32, 32), aux_cell=None)
    assert g.T == 3
    assert [c.bits for c in g.cells] == [1, 2, 4]
    assert [c.reduction for c in g.cells] == [False, True, False]
    assert g.prune_rate == 0.8 and g.C == 8 and g.num_classes == 10 and g.aux_cell is None
    assert Genotype.from_dict(g.to_dict()) == g


def test_decode_shape_errors():
    with pytest.raises(ConfigError, match="alpha must be"):
        decode_cell(np.zeros((10, 2)), [0, 0, 0], False)
    with pytest.raises(ConfigError, match="beta must have 3"):
        decode_cell(crafted_alpha(), [0, 0], False)


def test_decode_supernet_and_masks():
    torch.manual_seed(0)
    net = Supernet((3, 32, 32), 10, C=4, cells=8, reductions=(2, 5), T=6, prune_rate=0.8)
    with torch.no_grad():
        net.cells[0].alpha.copy_(torch.tensor(crafted_alpha()))
        net.cells[0].beta.copy_(torch.tensor([0.0, 1.0, 0.0]))
        net.psi.copy_(torch.tensor([0.0, 0, 0, 2.0, 0, 0]))
    g = decode(net)
    assert g.T == 4 and g.aux_cell == 5 and g.cells[0].bits == 2
    assert g.cells[0].nodes[1] == (Edge("skip", 1), Edge("conv3x3", 2))
    assert g.reductions == (2, 5) and g.input_shape == (3, 32, 32)
    assert len(g.meta["psi_softmax"]) == 6
    masks = extract_masks(net, g)
    assert "cell0.pre0" in masks and "cell0.node1.src2" in masks and "cell0.node1.src1" not in masks  # skip
    m = masks["cell0.node1.src2"]
    assert m.shape == (4, 4, 3, 3) and m.sum().item() == round(0.2 * m.numel())


def test_ties_go_to_more_bits_and_longer_T():
    g = decode_arrays([crafted_alpha()], [[0.0, 0.0, 0.0]], [0.0] * 5, reductions=[], C=4, prune_rate=0.5,
                      num_classes=3, input_shape=(1, 8, 8))
    assert g.T == 5 and g.cells[0].bits == 4
