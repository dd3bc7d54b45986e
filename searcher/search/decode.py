"""Decode a searched supernet into a Genotype (LitE-SNN Sec. 3.4).

Per node: keep the two incoming edges with the largest max_o softmax(alpha)_o (ties: the lower
source index) and give each its strongest op. Per cell: bits = the candidate of max beta.
T = argmax psi + 1. Exact ties in beta or psi (e.g. psi still uniform after its warm-up) go to
the larger bitwidth / longer T: without evidence, do not compress. The prune rate is the
search's p; the masks themselves stay in the supernet (`extract_masks` hands them to the retrainer).
`max_skips` (P-DARTS' rule, Chen et al. 2019) caps the skip edges a cell keeps: the ones with the
largest skip probability stay, the others take their best other op, against the collapse of a
short search into parameter-free cells.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from lsnn.errors import ConfigError
from lsnn.searcher.space.cell import CONV, STEPS, edge_list
from lsnn.searcher.space.genotype import OP_NAMES, CellGene, Edge, Genotype
from lsnn.searcher.space.quant import SEARCH_BITS
from lsnn.searcher.space.supernet import Supernet, aux_cell_for

KEEP_EDGES = 2


def last_argmax(a: Any) -> int:
    """Index of the maximum, the last one on ties."""
    v = np.asarray(a, dtype=np.float64).ravel()
    return int(len(v) - 1 - np.argmax(v[::-1]))


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def decode_cell(alpha: Any, beta: Any, reduction: bool, steps: int = STEPS,
                bits: Sequence[int] = SEARCH_BITS, max_skips: int | None = None) -> CellGene:
    """One CellGene from a cell's alpha logits [edges, ops] and beta logits [bits] (at most
    `max_skips` skip edges when given)."""
    a = np.asarray(alpha, dtype=np.float64)
    edges = edge_list(steps)
    if a.shape != (len(edges), len(OP_NAMES)):
        raise ConfigError(f"alpha must be [{len(edges)}, {len(OP_NAMES)}] for {steps} nodes, got {list(a.shape)}")
    b = np.asarray(beta, dtype=np.float64)
    if b.shape != (len(bits),):
        raise ConfigError(f"beta must have {len(bits)} entries, got {list(b.shape)}")
    probs = _softmax(a)
    kept: list[list[tuple[int, int]]] = []     # per node: (edge index, source) in source order
    for j in range(steps):
        cand = [(e, i) for e, (i, jj) in enumerate(edges) if jj == j]
        ranked = sorted(cand, key=lambda ei: (-probs[ei[0]].max(), ei[1]))[:KEEP_EDGES]
        kept.append(sorted(ranked, key=lambda ei: ei[1]))
    ops = {e: int(np.argmax(probs[e])) for node in kept for e, _ in node}
    if max_skips is not None:
        skip = OP_NAMES.index("skip")
        skips = sorted((e for e, o in ops.items() if o == skip), key=lambda e: (-probs[e, skip], e))
        for e in skips[max(int(max_skips), 0):]:
            others = probs[e].copy()
            others[skip] = -np.inf
            ops[e] = int(np.argmax(others))
    nodes = tuple(tuple(Edge(OP_NAMES[ops[e]], i) for e, i in node) for node in kept)
    return CellGene(reduction=reduction, bits=int(bits[last_argmax(b)]), nodes=nodes)


def decode_arrays(alphas: Sequence[Any], betas: Sequence[Any], psi: Any, reductions: Sequence[int], C: int,
                  prune_rate: float, num_classes: int, input_shape: Sequence[int],
                  aux_cell: int | None = None, meta: dict[str, Any] | None = None,
                  max_skips: int | None = None) -> Genotype:
    """A Genotype from the architecture parameters (logits) of every cell and psi."""
    if len(alphas) != len(betas):
        raise ConfigError(f"{len(alphas)} alpha arrays but {len(betas)} beta arrays")
    cells = tuple(decode_cell(a, b, k in set(reductions), max_skips=max_skips)
                  for k, (a, b) in enumerate(zip(alphas, betas)))
    T = last_argmax(psi) + 1
    return Genotype(cells=cells, T=T, C=int(C), prune_rate=float(prune_rate), num_classes=int(num_classes),
                    input_shape=tuple(int(v) for v in input_shape), aux_cell=aux_cell, meta=dict(meta or {}))


def decode(net: Supernet, aux_cell: int | None | str = "auto", max_skips: int | None = None) -> Genotype:
    """The Genotype of a supernet; aux_cell "auto": the Table 1 choice (Cell6 CIFAR, Cell5 GSC, else None)."""
    with torch.no_grad():
        alphas = [c.alpha.detach().cpu().double().numpy() for c in net.cells]
        betas = [c.beta.detach().cpu().double().numpy() for c in net.cells]
        psi = net.psi.detach().cpu().double().numpy()
    if aux_cell == "auto":
        aux_cell = aux_cell_for(len(net.cells), net.reductions)
    meta = {"method": "LitE-SNN supernet search",
            "psi_softmax": _softmax(psi).tolist(),
            "beta_softmax": [_softmax(b).tolist() for b in betas],
            "conv_share": [_softmax(a)[:, CONV].tolist() for a in alphas]}
    return decode_arrays(alphas, betas, psi, net.reductions, net.C, net.prune_rate, net.num_classes,
                         net.input_shape, aux_cell, meta, max_skips)


@torch.no_grad()
def extract_masks(net: Supernet, genotype: Genotype) -> dict[str, torch.Tensor]:
    """The learned keep-masks of the convs the genotype keeps, keyed "cell{k}.pre0", "cell{k}.pre1",
    "cell{k}.node{j}.src{i}" (for a naive supernet: the mask of the decoded bit branch)."""
    out: dict[str, torch.Tensor] = {}
    for k, (cell, gene) in enumerate(zip(net.cells, genotype.cells)):
        branch = SEARCH_BITS.index(gene.bits) if gene.bits in SEARCH_BITS else 0
        out[f"cell{k}.pre0"] = cell.pre0.conv.mask(branch).detach().clone()
        out[f"cell{k}.pre1"] = cell.pre1.conv.mask(branch).detach().clone()
        for j, edges in enumerate(gene.nodes):
            for e in edges:
                if e.op != "conv3x3":
                    continue
                idx = cell.edge_src_node.index((e.src, j))
                out[f"cell{k}.node{j}.src{e.src}"] = cell.edges[idx].ops["conv3x3"].conv.mask(branch).detach().clone()
    return out
