"""Small searcher objects for the tests: a genotype that covers every edge case of DeployNet and
a net whose BN statistics and thresholds moved away from their initial values."""
from __future__ import annotations

import torch

from lsnn.searcher.deploy.net import DeployNet
from lsnn.searcher.space.genotype import CellGene, Edge, Genotype

E = Edge


def tiny_genotype(T: int = 3, C: int = 4, prune: float = 0.5, input_shape=(3, 8, 8), aux_cell=1) -> Genotype:
    """Covers: conv/skip edges, a skip-only node, a node with two convs (shared Delta), a reduction
    cell with stride-2 conv and skip edges from its inputs, pre0 with stride 2 (after a reduction),
    concat consumers (pre convs, readout), every bit width."""
    cells = (
        CellGene(False, 2, ((E("conv3x3", 0), E("skip", 1)), (E("conv3x3", 1), E("conv3x3", 2)),
                            (E("skip", 2), E("skip", 3)), (E("conv3x3", 0), E("skip", 4)))),
        CellGene(True, 1, ((E("conv3x3", 0), E("skip", 1)), (E("skip", 0), E("conv3x3", 2)),
                           (E("conv3x3", 1), E("skip", 3)), (E("conv3x3", 4), E("skip", 0)))),
        CellGene(False, 4, ((E("conv3x3", 0), E("conv3x3", 1)), (E("skip", 1), E("conv3x3", 2)),
                            (E("conv3x3", 3), E("skip", 2)), (E("skip", 4), E("conv3x3", 3)))),
    )
    return Genotype(cells=cells, T=T, C=C, prune_rate=prune, num_classes=5, input_shape=input_shape,
                    aux_cell=aux_cell)




def trained_net(g: Genotype, seed: int = 0, steps: int = 3, dtype=torch.float32) -> DeployNet:
    """A net whose BN running statistics moved away from (0, 1) (a few training-mode forwards)."""
    torch.manual_seed(seed)
    net = DeployNet(g).to(dtype)
    net.train()
    with torch.no_grad():
        for _ in range(steps):
            net(torch.rand(4, *g.input_shape, dtype=dtype))
        for p in net.pops:        # random BN affine + thresholds as after training
            for c in p.convs:
                c.bn.weight.uniform_(0.5, 1.5)
                c.bn.bias.normal_(0.0, 0.3)
            p.lif.vth.uniform_(0.3, 0.9)
        net.readout.bias.normal_(0.0, 0.1)
    return net.eval()
