"""The search objective (LitE-SNN Eq. 15): CE (Eq. 17) + l1 * MEM (Eq. 18) + l2 * COMP (Eq. 20).

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


def search_loss(net: Supernet, out: SupernetOutput, y: torch.Tensor, l1: float, l2: float) -> LossTerms:
    """Eq. 15 for one batch."""
    ce = timestep_ce(out.logits, y, net.psi)
    cost = net.cost(out)
    total = ce + l1 * cost["mem_bits"] + l2 * cost["bit_synops"]
    return LossTerms(total, ce, cost["mem_bits"], cost["synops"], cost["bit_synops"])
