"""LitE-SNN's joint search: the supernet's two-step optimisation under Eq. 15, then decode."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lsnn.searcher.config import RunConfig
from lsnn.searcher.run_log import append_epoch, read_log
from lsnn.searcher.space.genotype import Genotype
from lsnn.searcher.stages import Echo, Splits, resolved_hparams, search_config


def run_litesnn(cfg: RunConfig, data: Splits, out: Path, resume: bool, echo: Echo) -> Genotype:
    """Supernet search + decode; writes search_log.jsonl and the plots."""
    from lsnn.searcher.plots import plot_search_history
    from lsnn.searcher.search.loop import run_search

    hp = resolved_hparams(cfg)
    log_path = out / "search_log.jsonl"
    echo(f"search: {cfg.dataset}, C={cfg.C}, {cfg.cells} cells (reductions {cfg.reductions}), T<={cfg.T}, "
         f"l1={hp['l1']:g}, l2={hp['l2']:g} ({cfg.cost_weights}), p={hp['p']:g}, {cfg.search_epochs} epochs")
    result = run_search(search_config(cfg, data), data.train, data.val, out, resume=resume,
                        on_epoch=lambda rec: append_epoch(log_path, rec))
    history = read_log(log_path)
    if history:
        plot_search_history(history, out / "search_history.png")
    plot_weights(result, out / "weight_distribution.png")
    return result.genotype


def plot_weights(result: Any, path: Path) -> None:
    """Fig. 2(c) for the largest CompConv edge of the searched supernet."""
    from lsnn.searcher.plots import plot_weight_distribution

    w, w_mixed, mask, title = result.weight_distribution()
    plot_weight_distribution(w, w_mixed, mask, path, title=title)
