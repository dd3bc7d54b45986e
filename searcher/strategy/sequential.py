"""The sequential A+P+Q+T baseline of LitE-SNN's Table 4: the same supernet, but one
single-objective step after another instead of a joint optimisation.

A: architecture search alone (alpha), at full precision, no mask, T fixed at its maximum,
   l1 = l2 = 0. P: magnitude pruning to p. Q: bits per cell, cell by cell, each the candidate
   that minimises Eq. 15 on the validation split with the other choices fixed. T: the number of
   timesteps that minimises Eq. 15. Then the common retraining. Eq. 15's weights are relative
   to the pruned full-precision network's cost, as the joint search's are to its supernet's.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lsnn.io import write_json
from lsnn.searcher.config import RunConfig
from lsnn.searcher.run_log import append_epoch
from lsnn.searcher.space.genotype import Genotype
from lsnn.searcher.space.quant import SEARCH_BITS
from lsnn.searcher.space.supernet import Supernet, one_hot_
from lsnn.searcher.stages import Echo, Splits, resolved_hparams, search_config


@torch.no_grad()
def prune_by_magnitude(net: Supernet, p: float) -> None:
    """Step P: every CompConv keeps the (1 - p) largest |W| (its mask scores set to |W|)."""
    for m in net.modules():
        if hasattr(m, "scores") and hasattr(m, "prune_rate"):
            w = m.weight.abs()
            m.scores.copy_(w if m.scores.shape == w.shape else w.unsqueeze(0).expand_as(m.scores))
            m.prune_rate = float(p)
    for cell in net.cells:
        cell.prune_rate = float(p)
    net.prune_rate = float(p)


@torch.no_grad()
def objective(net: Supernet, x: torch.Tensor, y: torch.Tensor, l1: float, l2: float, batch_size: int = 256
              ) -> float:
    """Eq. 15 (CE + l1 * MEM + l2 * Bit-SynOps) on (x, y), eval-mode BN, sample-weighted mean."""
    from lsnn.searcher.search.loss import search_loss

    was = net.training
    net.eval()
    total = 0.0
    try:
        for s in range(0, len(y), batch_size):
            terms = search_loss(net, net(x[s:s + batch_size]), y[s:s + batch_size], l1, l2)
            total += float(terms.total) * len(y[s:s + batch_size])
    finally:
        net.train(was)
    return total / max(len(y), 1)


def choose_bits(net: Supernet, x: torch.Tensor, y: torch.Tensor, l1: float, l2: float) -> list[dict[str, float]]:
    """Step Q: cell by cell, the bits of least objective (ties: more bits); returns the objectives."""
    steps = []
    for cell in net.cells:
        scores = {}
        for j, b in enumerate(SEARCH_BITS):
            one_hot_(cell.beta.data, j)
            scores[b] = objective(net, x, y, l1, l2)
        best = min(sorted(scores, reverse=True), key=lambda b: scores[b])
        one_hot_(cell.beta.data, SEARCH_BITS.index(best))
        steps.append({str(b): v for b, v in scores.items()})
    return steps


def choose_T(net: Supernet, x: torch.Tensor, y: torch.Tensor, l1: float, l2: float) -> dict[str, float]:
    """Step T: the number of timesteps of least objective (ties: the longer); returns the objectives."""
    scores = {}
    for t in range(1, net.T + 1):
        net.fix_choices(T=t)
        scores[t] = objective(net, x, y, l1, l2)
    best = min(sorted(scores, reverse=True), key=lambda t: scores[t])
    net.fix_choices(T=best)
    return {str(t): v for t, v in scores.items()}


def run_sequential(cfg: RunConfig, data: Splits, out: Path, resume: bool, echo: Echo) -> Genotype:
    """A, then P, Q and T on the validation split; writes search_log.jsonl and sequential.json."""
    from lsnn.searcher.search.decode import decode
    from lsnn.searcher.search.loop import run_search
    from lsnn.searcher.search.loss import absolute_weights, initial_costs

    hp = resolved_hparams(cfg)
    echo(f"search (sequential): A, architecture only at {max(SEARCH_BITS)} bits, T={cfg.T}, no mask, "
         f"{cfg.search_epochs} epochs")
    scfg = search_config(cfg, data, l1=0.0, l2=0.0, p=0.0, fixed_bits=max(SEARCH_BITS), fixed_T=cfg.T,
                         fixed_masks=True)
    result = run_search(scfg, data.train, data.val, out, resume=resume,
                        on_epoch=lambda rec: append_epoch(out / "search_log.jsonl", rec))
    net = result.net
    x = torch.from_numpy(np.ascontiguousarray(data.val[0], dtype=np.float32))
    y = torch.from_numpy(np.asarray(data.val[1], dtype=np.int64))
    prune_by_magnitude(net, hp["p"])
    l1, l2 = absolute_weights(hp["l1"], hp["l2"], cfg.cost_weights, initial_costs(net, x[:cfg.batch_size]))
    bits_steps = choose_bits(net, x, y, l1, l2)
    t_steps = choose_T(net, x, y, l1, l2)
    g = decode(net, max_skips=scfg.max_skips)
    steps: dict[str, Any] = {"p": hp["p"], "l1": hp["l1"], "l2": hp["l2"], "cost_weights": cfg.cost_weights,
                             "bits_objective": bits_steps, "T_objective": t_steps}
    write_json(out / "sequential.json", steps)
    echo(f"search (sequential): P p={hp['p']:g}, Q bits {[c.bits for c in g.cells]}, T {g.T}")
    return dataclasses.replace(g, meta={"method": "sequential A+P+Q+T", **steps})
