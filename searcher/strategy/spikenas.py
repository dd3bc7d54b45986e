"""SpikeNAS-style search (arXiv 2402.11322): training-free, cell by cell, under a memory budget.

Our reading of the method, in this project's space (conv3x3 / skip edges, bits per cell, the
run's prune rate p and T):

1. The operation set is already the reduced one SpikeNAS's significance analysis argues for
   (3x3 convolutions and skips only); the number of cells is the run's `cells`.
2. The budget (`memory_budget_kb`, the cost model's model size, Eq. 18) is shared out over
   the cells in proportion to what each costs at its largest (`cumulative_limits`), so that
   the first cells cannot spend what the later ones need.
3. Cell by cell: first the edges, node by node. Every cell starts with each node reading both
   cell inputs through convolutions; for the node being decided, every pair of distinct earlier
   inputs with every op pair is scored at initialisation (`hamming_score`: how differently the
   net's LIF layers respond to different inputs), with the choices made so far fixed. Only
   candidates whose smallest completion (later nodes on skips, the cell at 1 bit) stays within
   the cell's cumulative limit are kept. Then the cell's bits: the widest of {4, 2, 1} within
   that limit.

No weights are trained during the search; the usual retraining follows. Without a budget every
cell keeps 4 bits.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lsnn.errors import ConfigError
from lsnn.io import write_json
from lsnn.searcher.config import RunConfig
from lsnn.searcher.space.cell import STEPS
from lsnn.searcher.space.genotype import CellGene, Edge, Genotype
from lsnn.searcher.space.quant import SEARCH_BITS
from lsnn.searcher.stages import Echo, Splits, resolved_hparams, retrain_config
from lsnn.searcher.strategy.hamming_score import hamming_score

OPS = ("conv3x3", "skip")


def node_candidates(j: int) -> list[tuple[Edge, Edge]]:
    """Every edge pair of node j: two distinct earlier inputs (0 = s0, 1 = s1, 2 + i = node i),
    each through either op."""
    return [(Edge(a, s), Edge(b, t)) for s, t in itertools.combinations(range(2 + j), 2)
            for a, b in itertools.product(OPS, OPS)]


def start_cell(reduction: bool, bits: int, op: str = "conv3x3") -> CellGene:
    """Every node reading both cell inputs through `op`: 3x3 convolutions before any choice,
    skips for the cheapest completion of a partly decided net."""
    return CellGene(reduction, bits, tuple((Edge(op, 0), Edge(op, 1)) for _ in range(STEPS)))


def smallest_after(g: Genotype, k: int, j: int) -> Genotype:
    """`g` as decided up to node j of cell k: the earlier cells as they are, cell k at 1 bit with
    its later nodes reading both cell inputs through skips, the later cells all skips at 1 bit
    (j = -1: nothing of cell k decided; k = len(cells): the whole net as it is)."""
    low = min(SEARCH_BITS)
    cells = []
    for i, c in enumerate(g.cells):
        skips = start_cell(c.reduction, low, "skip")
        if i < k:
            cells.append(c)
        else:
            keep = j + 1 if i == k else 0
            cells.append(dataclasses.replace(c, bits=low, nodes=c.nodes[:keep] + skips.nodes[keep:]))
    return dataclasses.replace(g, cells=tuple(cells))


def _replace(g: Genotype, k: int, cell: CellGene) -> Genotype:
    return dataclasses.replace(g, cells=g.cells[:k] + (cell,) + g.cells[k + 1:])


def _with_node(cell: CellGene, j: int, edges: tuple[Edge, ...]) -> CellGene:
    return dataclasses.replace(cell, nodes=cell.nodes[:j] + (edges,) + cell.nodes[j + 1:])


class Scorer:
    """Builds the retraining net of a genotype (seeded, as retraining would) to score it on a
    fixed batch and to measure its model size; sizes are cached per genotype."""

    def __init__(self, cfg: RunConfig, data: Splits) -> None:
        self.rcfg = retrain_config(cfg, lif_mode="float", aux_weight=0.0)
        rng = np.random.default_rng(cfg.seed)
        idx = np.sort(rng.permutation(len(data.train[1]))[:cfg.batch_size])
        self.x = torch.from_numpy(np.ascontiguousarray(data.train[0][idx])).float()
        self._sizes: dict[Genotype, float] = {}

    def _net(self, g: Genotype) -> Any:
        from lsnn.searcher.deploy.retrain import build_net

        return build_net(g, self.rcfg)

    @torch.no_grad()
    def score(self, g: Genotype) -> float:
        """hamming_score of the net at initialisation (BN on batch statistics) on the fixed batch."""
        net = self._net(g).train()
        out = net.forward_all(self.x, keep_spikes=True)
        return hamming_score(out["spikes"].values())

    def size(self, g: Genotype) -> float:
        """The cost model's model size in bytes (Eq. 18; needs no trained weights)."""
        if g not in self._sizes:
            from lsnn.searcher.deploy.artifact_cost import artifact_cost
            from lsnn.searcher.deploy.export import export_artifact

            net = self._net(g).eval()
            self._sizes[g] = float(artifact_cost(export_artifact(net, g, validate=False), {})["model_size_bytes"])
        return self._sizes[g]


def cumulative_limits(g: Genotype, scorer: "Scorer", budget: float) -> list[float]:
    """limits[k]: the most the net may weigh once cells 0..k are decided. The smallest net (all
    skips, 1 bit) plus, per cell, a share of the rest of the budget in proportion to what that
    cell costs at its largest (all convolutions, 4 bits), so that early cells cannot spend what
    later ones need."""
    floor = scorer.size(smallest_after(g, 0, -1))
    if floor > budget:
        raise ConfigError(f"memory_budget_kb {budget / 1000:g}: the smallest net of this space is "
                          f"{floor / 1000:.2f} kB (C = {g.C}, p = {g.prune_rate:g})")
    if math.isinf(budget):
        return [math.inf] * len(g.cells)
    top = max(SEARCH_BITS)
    extra = [scorer.size(_replace(smallest_after(g, 0, -1), k, start_cell(c.reduction, top))) - floor
             for k, c in enumerate(g.cells)]
    slack, total = budget - floor, sum(extra) or 1.0
    return [floor + slack * sum(extra[:k + 1]) / total for k in range(len(g.cells))]


def choose_cell(g: Genotype, k: int, scorer: "Scorer", limit: float, log: list[dict[str, Any]],
                bar: Any) -> Genotype:
    """Cell k: its edges node by node (best score among the candidates within `limit` at 1 bit),
    then the widest bits within `limit`; appends every candidate to `log`."""
    for j in range(STEPS):
        best: tuple[float, int] | None = None
        options = node_candidates(j)
        for n, edges in enumerate(options):
            cand = _replace(g, k, _with_node(g.cells[k], j, edges))
            size = scorer.size(smallest_after(cand, k, j))
            fits = size <= limit
            s = scorer.score(cand) if fits else -math.inf
            log.append({"cell": k, "node": j, "edges": [[e.op, e.src] for e in edges], "fits": fits,
                        "score": s if math.isfinite(s) else None, "smallest_size_bytes": size})
            if fits and (best is None or s > best[0]):
                best = (s, n)
            bar.update(1)
        # the node's cheapest option (two skips) is within the limit that the previous step kept
        g = _replace(g, k, _with_node(g.cells[k], j, options[best[1] if best else -1]))
    def with_bits(b: int) -> Genotype:
        return _replace(g, k, dataclasses.replace(g.cells[k], bits=b))

    fits = [b for b in SEARCH_BITS if scorer.size(smallest_after(with_bits(b), k + 1, -1)) <= limit]
    return with_bits(max(fits, default=min(SEARCH_BITS)))      # the edges were chosen to fit at 1 bit


def run_spikenas(cfg: RunConfig, data: Splits, out: Path, resume: bool, echo: Echo) -> Genotype:
    """SpikeNAS-style search (module docstring); writes spikenas.json (every candidate scored)."""
    p = float(resolved_hparams(cfg)["p"])
    budget = math.inf if cfg.memory_budget_kb is None else 1000.0 * cfg.memory_budget_kb
    red = set(cfg.reductions)
    g = Genotype(cells=tuple(start_cell(k in red, max(SEARCH_BITS)) for k in range(cfg.cells)), T=int(cfg.T),
                 C=int(cfg.C_retrain or cfg.C), prune_rate=p, num_classes=len(data.classes),
                 input_shape=tuple(data.input_shape), meta={"method": "spikenas"})
    echo(f"search (spikenas): training-free, cell by cell, {cfg.cells} cells, T={g.T}, p={p:g}, "
         f"memory budget {'none' if cfg.memory_budget_kb is None else f'{cfg.memory_budget_kb:g} kB'}")
    from tqdm import tqdm

    scorer = Scorer(cfg, data)
    log: list[dict[str, Any]] = []
    limits = cumulative_limits(g, scorer, budget)
    with tqdm(total=cfg.cells * sum(len(node_candidates(j)) for j in range(STEPS)),
              desc="spikenas candidates", leave=False) as bar:
        for k in range(cfg.cells):
            g = choose_cell(g, k, scorer, limits[k], log, bar)
    size = scorer.size(g)
    g = dataclasses.replace(g, meta={**g.meta, "memory_budget_kb": cfg.memory_budget_kb, "model_size_bytes": size})
    write_json(out / "spikenas.json", {"memory_budget_kb": cfg.memory_budget_kb, "p": p, "T": g.T,
                                       "model_size_bytes": size, "genotype": g.to_dict(), "candidates": log})
    echo(f"search (spikenas): {len(log)} candidates scored; bits {[c.bits for c in g.cells]}, "
         f"model size {size / 1000:.2f} kB")
    return g
