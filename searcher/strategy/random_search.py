"""Random search in LitE-SNN's space: random genotypes (edges, ops, bits per cell, T; the run's
prune rate, masks by magnitude at initialisation), each trained briefly with the run's own
retraining recipe, measured (validation accuracy, model size, Bit-SynOps at the measured rates),
and the one of best Eq. 15-like score kept:

    score = (1 - val accuracy) + l1 * size / max size + l2 * Bit-SynOps / max Bit-SynOps

with the run's relative (l1, l2) and the maxima over the candidates. The default number of
candidates gives it no more compute than the joint search: a search epoch runs two forward and
backward passes of a supernet that holds every candidate op, so 2 x search_epochs proxy epochs of
one (smaller) genotype each is an upper bound.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lsnn.errors import ConfigError
from lsnn.io import write_json
from lsnn.searcher.config import RunConfig
from lsnn.searcher.space.genotype import Genotype
from lsnn.searcher.space.quant import SEARCH_BITS
from lsnn.searcher.space.random_genotype import random_genotype
from lsnn.searcher.stages import Echo, Splits, resolved_hparams, retrain_config


def n_candidates(cfg: RunConfig) -> int:
    """cfg.random_candidates, or as many as fit the joint search's compute (module docstring)."""
    if cfg.random_candidates is not None:
        return int(cfg.random_candidates)
    return max(1, (2 * cfg.search_epochs) // cfg.proxy_epochs)


def candidate(cfg: RunConfig, data: Splits, k: int, p: float) -> Genotype:
    """The k-th random genotype of the run (a function of cfg.seed and k only)."""
    return random_genotype(cfg.seed * 1_000_003 + k, cells=cfg.cells, reductions=cfg.reductions,
                           C=cfg.C_retrain or cfg.C, T_max=cfg.T, input_shape=data.input_shape,
                           num_classes=len(data.classes), bits=SEARCH_BITS, prune_rates=(p,),
                           meta={"method": "random search", "candidate": k})


def measure(cfg: RunConfig, data: Splits, g: Genotype, folder: Path, resume: bool) -> dict[str, Any]:
    """Proxy-train `g` (cfg.proxy_epochs, the last one in the deployed form) and measure it on val."""
    from lsnn.searcher.deploy.artifact_cost import artifact_cost
    from lsnn.searcher.deploy.export import export_artifact
    from lsnn.searcher.deploy.retrain import run_retrain

    rcfg = retrain_config(cfg, epochs=cfg.proxy_epochs, freeze_epochs=min(1, cfg.proxy_epochs - 1),
                          warmup_epochs=0, float_epochs=0, prune_ramp_epochs=0, progress=False)
    res = run_retrain(g, rcfg, data.train, data.val, data.val, folder, resume=resume)
    art = export_artifact(res.net, g, metrics={"test_accuracy": res.test_accuracy,
                                               "spike_rates": res.test_spike_rates})
    cost = artifact_cost(art)
    return {"val_accuracy": float(res.test_accuracy), "model_size_bytes": float(cost["model_size_bytes"]),
            "bit_synops": float(cost["bit_synops"]), "T": g.T, "bits_per_cell": [c.bits for c in g.cells]}


def score(rows: list[dict[str, Any]], l1: float, l2: float) -> list[float]:
    """The module docstring's score of every measured candidate (lower is better)."""
    size = max(r["model_size_bytes"] for r in rows) or 1.0
    bso = max(r["bit_synops"] for r in rows) or 1.0
    return [(1.0 - r["val_accuracy"]) + l1 * r["model_size_bytes"] / size + l2 * r["bit_synops"] / bso
            for r in rows]


def run_random(cfg: RunConfig, data: Splits, out: Path, resume: bool, echo: Echo) -> Genotype:
    """Measure n_candidates(cfg) random genotypes, keep the best score; writes random_search.json."""
    from tqdm import tqdm

    if cfg.cost_weights != "relative":
        raise ConfigError("strategy 'random' scores candidates with relative cost weights; "
                          "drop cost_weights: absolute")
    hp = resolved_hparams(cfg)
    n = n_candidates(cfg)
    echo(f"search (random): {n} random genotypes, {cfg.proxy_epochs} proxy epochs each, "
         f"l1={hp['l1']:g}, l2={hp['l2']:g} (relative), p={hp['p']:g}")
    genes = [candidate(cfg, data, k, hp["p"]) for k in range(n)]
    rows = [measure(cfg, data, g, out / "candidates" / f"{k:03d}", resume)
            for k, g in enumerate(tqdm(genes, desc="random candidates", leave=False))]
    scores = score(rows, hp["l1"], hp["l2"])
    best = min(range(n), key=lambda k: (scores[k], k))
    for k, r in enumerate(rows):
        r.update({"candidate": k, "score": scores[k], "genotype": genes[k].to_dict()})
    write_json(out / "random_search.json", {"l1": hp["l1"], "l2": hp["l2"], "p": hp["p"], "best": best,
                                            "candidates": rows})
    echo(f"search (random): candidate {best} of {n}: val {100 * rows[best]['val_accuracy']:.2f} %, "
         f"T={genes[best].T}, bits {[c.bits for c in genes[best].cells]}")
    return genes[best]

