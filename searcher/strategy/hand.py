"""A hand-designed plain SNN in the same space: every cell a chain of 3x3 conv-BN-LIF layers
(node j reads node j - 1 only, node 0 the previous cell), with the same stem, reductions (stride
2 at the reduction cells, the pooling of this space) and readout as a searched network; the
bits, prune rate and T are chosen by hand (`--hand-bits`, `-p`, `-T`). The DARTS cell output
still concatenates its nodes: the compiler's layout for every cell."""
from __future__ import annotations

from pathlib import Path

from lsnn.searcher.config import RunConfig
from lsnn.searcher.space.cell import STEPS
from lsnn.searcher.space.genotype import CellGene, Edge, Genotype
from lsnn.searcher.stages import Echo, Splits, resolved_hparams


def chain_cell(reduction: bool, bits: int, nodes: int = STEPS) -> CellGene:
    """One cell whose nodes form a single conv chain from the previous cell's output: node j reads
    input 1 + j (input 1 is the previous cell, input 2 + i is node i)."""
    edges = tuple((Edge("conv3x3", 1 + j),) for j in range(nodes))
    return CellGene(reduction=reduction, bits=int(bits), nodes=edges)


def hand_genotype(cfg: RunConfig, data: Splits) -> Genotype:
    """The plain stack of `cfg`: cfg.cells chain cells of cfg.hand_nodes convs at cfg.hand_bits,
    T = cfg.T, p resolved."""
    red = set(cfg.reductions)
    cells = tuple(chain_cell(k in red, cfg.hand_bits, cfg.hand_nodes) for k in range(cfg.cells))
    return Genotype(cells=cells, T=int(cfg.T), C=int(cfg.C), prune_rate=float(resolved_hparams(cfg)["p"]),
                    num_classes=len(data.classes), input_shape=tuple(data.input_shape),
                    meta={"method": "hand-designed plain stack", "bits": cfg.hand_bits, "nodes": cfg.hand_nodes})


def run_hand(cfg: RunConfig, data: Splits, out: Path, resume: bool, echo: Echo) -> Genotype:
    """No search: the hand-designed genotype."""
    g = hand_genotype(cfg, data)
    echo(f"search: none (hand-designed plain stack), {cfg.cells} cells of {cfg.hand_nodes} convs, "
         f"bits {cfg.hand_bits}, T={g.T}, "
         f"p={g.prune_rate:g}")
    return g
