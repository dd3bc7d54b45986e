"""Pareto fronts of accuracy against cost, and the comparison figure (headless, Agg)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from lsnn.compare.table import PointStats

P = TypeVar("P")

# (x key of PointStats.mean, axis label, divisor) of the figure's two panels
PANELS = (("bit_synops", "Bit-SynOps per sample (M)", 1e6), ("model_size_bytes", "model size (kB)", 1e3))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _default_cost(p: Any) -> float:
    return float(p[0])


def _default_accuracy(p: Any) -> float:
    return float(p[1])


def pareto_front(points: Sequence[P], cost: Callable[[P], float] = _default_cost,
                 accuracy: Callable[[P], float] = _default_accuracy) -> list[P]:
    """The non-dominated points (max accuracy, min cost), by cost ascending; equal points all stay.

    A point is dominated when another has cost <= and accuracy >= with at least one strict.
    Points default to (cost, accuracy) pairs; `cost` and `accuracy` read other shapes."""
    keyed = [(cost(p), accuracy(p), i, p) for i, p in enumerate(points)]
    front = [(c, a, i, p) for c, a, i, p in keyed
             if not any(c2 <= c and a2 >= a and (c2 < c or a2 > a) for c2, a2, _, _ in keyed)]
    return [p for _, _, _, p in sorted(front, key=lambda t: (t[0], -t[1], t[2]))]


def strategy_fronts(groups: Sequence[PointStats], key: str) -> dict[str, list[PointStats]]:
    """Each strategy's front of mean accuracy against the mean of cost `key`."""
    by_strategy: dict[str, list[PointStats]] = {}
    for g in groups:
        by_strategy.setdefault(g.strategy, []).append(g)
    return {s: pareto_front(gs, cost=lambda g: g.mean[key], accuracy=lambda g: g.mean["test_accuracy"])
            for s, gs in by_strategy.items()}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pareto(groups: Sequence[PointStats], path: str | Path) -> Path:
    """One PNG: accuracy vs Bit-SynOps and vs model size, error bars = std over seeds, fronts as steps."""
    plt = _plt()
    path = Path(path)
    strategies = list(dict.fromkeys(g.strategy for g in groups))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, (key, label, scale) in zip(axes, PANELS):
        fronts = strategy_fronts(groups, key)
        for i, strategy in enumerate(strategies):
            colour, marker = colours[i % len(colours)], MARKERS[i % len(MARKERS)]
            mine = [g for g in groups if g.strategy == strategy]
            ax.errorbar([g.mean[key] / scale for g in mine], [100 * g.mean["test_accuracy"] for g in mine],
                        xerr=[g.std[key] / scale for g in mine], yerr=[100 * g.std["test_accuracy"] for g in mine],
                        fmt=marker, color=colour, capsize=3, label=f"{strategy} ({sum(g.n for g in mine)} runs)")
            front = fronts[strategy]
            ax.step([g.mean[key] / scale for g in front], [100 * g.mean["test_accuracy"] for g in front],
                    where="post", color=colour, alpha=0.6, lw=1.5)
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"accuracy vs {label.split(' (')[0]}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path
