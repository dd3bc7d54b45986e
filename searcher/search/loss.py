"""The search objective (LitE-SNN Eq. 15): CE (Eq. 17) + l1 * MEM (Eq. 18) + l2 * COMP (Eq. 20).

l1 and l2 are absolute (per bit, per Bit-SynOp, the paper's units) or relative to the supernet's
initial MEM and Bit-SynOps (`absolute_weights`), which mean the same on every dataset.

MEM and COMP are per-sample expected costs from `Supernet.cost`. By default the spike rates
inside COMP carry no gradient (as the paper's code): l2 then moves only beta, alpha and psi.
With `differentiable_rate` (the forward must have been run with rate_grad=True) COMP also pushes
firing down through the surrogate gradient.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lsnn.searcher.search.timestep import timestep_ce
from lsnn.searcher.space.supernet import Supernet, SupernetOutput


@dataclass
class LossTerms:
    total: torch.Tensor
    ce: torch.Tensor
    mem_bits: torch.Tensor
    synops: torch.Tensor
    bit_synops: torch.Tensor


@torch.no_grad()
def initial_costs(net: Supernet, x: torch.Tensor) -> tuple[float, float]:
    """(MEM bits, Bit-SynOps) per sample of the supernet as it is, on batch `x` in training mode
    (batch BN statistics), without touching its BN buffers: the units of relative cost weights."""
    state = {k: v.clone() for k, v in net.named_buffers()}
    was = net.training
    net.train()
    try:
        cost = net.cost(net(x))
    finally:
        for k, v in net.named_buffers():
            v.copy_(state[k])
        net.train(was)
    return float(cost["mem_bits"]), float(cost["bit_synops"])


def absolute_weights(l1: float, l2: float, mode: str, costs: tuple[float, float]) -> tuple[float, float]:
    """Eq. 15's (l1, l2) per bit and per Bit-SynOp: `mode` "absolute" takes them as given (the
    paper's units); "relative" divides by the initial (MEM, Bit-SynOps), so l1 = 0.01 charges 1 %
    of the initial model size in loss units, whatever the dataset and supernet."""
    if mode == "absolute":
        return float(l1), float(l2)
    mem0, bs0 = costs
    return float(l1) / max(mem0, 1e-12), float(l2) / max(bs0, 1e-12)


def search_loss(net: Supernet, out: SupernetOutput, y: torch.Tensor, l1: float, l2: float) -> LossTerms:
    """Eq. 15 for one batch."""
    ce = timestep_ce(out.logits, y, net.psi)
    cost = net.cost(out)
    total = ce + l1 * cost["mem_bits"] + l2 * cost["bit_synops"]
    return LossTerms(total, ce, cost["mem_bits"], cost["synops"], cost["bit_synops"])
