"""Plots of a search run: architecture parameters over epochs and the CompConv weight distribution.

Headless (Agg). Each function takes plain records / arrays and writes one PNG.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

BIT_LABELS = ("1 bit", "2 bits", "4 bits")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_search_history(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Loss terms, accuracy, softmax(psi), softmax(beta) per cell and the conv share of alpha over epochs."""
    plt = _plt()
    path = Path(path)
    epochs = [r["epoch"] for r in history]
    n_cells = len(history[0].get("beta", [])) if history else 0
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    ax = axes[0, 0]
    ax.plot(epochs, [r["ce"] for r in history], label="CE")
    ax.plot(epochs, [r["loss"] for r in history], label="total (Eq. 15)")
    ax.set_title("loss")
    ax.set_xlabel("epoch")
    ax.legend()
    ax = axes[0, 1]
    ax.plot(epochs, [100 * r["train_acc"] for r in history], label="train")
    ax.plot(epochs, [100 * r["val_acc"] for r in history], label="val")
    ax.set_title("supernet accuracy (%)")
    ax.set_xlabel("epoch")
    ax.legend()
    ax = axes[0, 2]
    ax2 = ax.twinx()
    ax.plot(epochs, [r["model_size_bytes"] / 1e3 for r in history], color="tab:blue", label="model size (kB)")
    ax2.plot(epochs, [r["bit_synops"] / 1e6 for r in history], color="tab:red", label="Bit-SynOps (M)")
    ax.set_ylabel("model size (kB)", color="tab:blue")
    ax2.set_ylabel("Bit-SynOps (M)", color="tab:red")
    ax.set_title("cost terms")
    ax.set_xlabel("epoch")
    ax = axes[1, 0]
    psi = np.array([r["psi"] for r in history])
    if psi.size:
        ax.stackplot(epochs, psi.T, labels=[f"T={t + 1}" for t in range(psi.shape[1])])
        ax.legend(loc="upper left", fontsize=7)
    ax.set_title("softmax(psi): timestep choice")
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 1)
    ax = axes[1, 1]
    if n_cells:
        beta = np.array([r["beta"] for r in history])  # [E, cells, 3]
        bw = beta @ np.array([1.0, 2.0, 4.0])
        for c in range(n_cells):
            ax.plot(epochs, bw[:, c], label=f"cell {c}")
        ax.legend(fontsize=7)
    ax.set_title("expected bitwidth softmax(beta).[1,2,4] per cell")
    ax.set_xlabel("epoch")
    ax = axes[1, 2]
    if history and history[0].get("alpha"):
        for c in range(len(history[0]["alpha"])):
            conv_share = [float(np.mean(np.array(r["alpha"][c])[:, 0])) for r in history]
            ax.plot(epochs, conv_share, label=f"cell {c}")
        ax.legend(fontsize=7)
    ax.set_title("mean softmax(alpha)[conv3x3] per cell")
    ax.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_weight_distribution(w: np.ndarray, w_mixed: np.ndarray, mask: np.ndarray, path: str | Path,
                             title: str = "", bins: int = 61) -> Path:
    """The paper's Fig. 2(c): histograms of W, the bit-mixed e(W) and W_output, with the pruning rate per |W| bin."""
    plt = _plt()
    path = Path(path)
    w, w_mixed, mask = (np.asarray(a, dtype=np.float64).ravel() for a in (w, w_mixed, mask))
    w_out = w_mixed * mask
    lim = float(np.max(np.abs(w))) or 1.0
    edges = np.linspace(-lim, lim, bins + 1)
    centers = 0.5 * (edges[1:] + edges[:-1])
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.hist(w, bins=edges, alpha=0.45, label="W")
    ax.hist(w_mixed, bins=edges, alpha=0.45, label="e(W) (mixed bits)")
    ax.hist(w_out[mask > 0], bins=edges, alpha=0.6, label="W_output (kept)")
    ax.set_xlabel("weight value")
    ax.set_ylabel("count")
    idx = np.clip(np.digitize(w, edges) - 1, 0, bins - 1)
    total = np.bincount(idx, minlength=bins)
    pruned = np.bincount(idx, weights=(mask == 0).astype(float), minlength=bins)
    rate = np.divide(pruned, total, out=np.full(bins, np.nan), where=total > 0)
    ax2 = ax.twinx()
    ax2.plot(centers, 100 * rate, color="black", lw=1.5, label="pruning rate")
    ax2.set_ylabel("pruning rate (%) by W bin")
    ax2.set_ylim(0, 105)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    ax.set_title(title or "CompConv weights (Fig. 2(c))")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_retrain_history(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Retraining loss and accuracy over epochs."""
    plt = _plt()
    path = Path(path)
    epochs = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [r["loss"] for r in history])
    a.set_title("retrain loss")
    a.set_xlabel("epoch")
    b.plot(epochs, [100 * r["train_acc"] for r in history], label="train")
    b.plot(epochs, [100 * r["val_acc"] for r in history], label="val")
    b.set_title("retrain accuracy (%)")
    b.set_xlabel("epoch")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
