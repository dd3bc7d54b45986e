"""The paper's search presets (Sec. 4.1): (l1, l2, prune rate p) per model scale.

Each preset carries its cost weights twice: `l1, l2` in the paper's absolute units (per bit of
weight storage, per Bit-SynOp; `--cost-weights absolute`), and `l1_rel, l2_rel` relative to the
supernet's initial model size and Bit-SynOps (`--cost-weights relative`, the default), which
mean the same share of the model on every dataset. The paper's own values, converted at the
paper's CIFAR search supernet (C = 48, 8 cells, T = 6: 4.67e6 bits, 8.59e8 Bit-SynOps at
initialisation; `benchmarks/preset_units.py`), are medium l1_rel = 2.3e-3, l2_rel = 4.3e-5:
at lsnn's CPU budgets (10-50 search epochs) they do not move the search at all (digits: T and
bits stay at their maxima, docs/ACCURACY.md). The relative presets are therefore set where the
search visibly compresses within such budgets, measured on digits (medium: T 4 -> 3, bits
[4, 2, 2]); small and gsc keep the paper's ratios to medium.
"""
from __future__ import annotations

from dataclasses import dataclass

from lsnn.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """Eq. 15 coefficients and the pruning rate of one LitE-SNN scale."""

    name: str
    l1: float       # MEM coefficient per bit of weight storage (the paper's)
    l2: float       # COMP coefficient per Bit-SynOp (the paper's)
    p: float        # pruning rate of every CompConv
    l1_rel: float   # the same per initial model size
    l2_rel: float   # the same per initial Bit-SynOps

    def weights(self, mode: str) -> tuple[float, float]:
        """(l1, l2) for cost_weights `mode` ("relative" or "absolute")."""
        return (self.l1_rel, self.l2_rel) if mode == "relative" else (self.l1, self.l2)


PRESETS: dict[str, Preset] = {
    "large": Preset("large", 0.0, 0.0, 0.5, 0.0, 0.0),
    "medium": Preset("medium", 5e-10, 5e-14, 0.8, 0.15, 0.01),
    "small": Preset("small", 1e-9, 1e-13, 0.9, 0.3, 0.02),
    "gsc": Preset("gsc", 1e-9, 1e-13, 0.7, 0.3, 0.02),
}


def get_preset(name: str) -> Preset:
    """The preset called `name`; an unknown name is an error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset '{name}' (known: {', '.join(PRESETS)})") from None
