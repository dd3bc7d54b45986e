"""The paper's search presets (Sec. 4.1): (l1, l2, prune rate p) per model scale.

Each preset carries its cost weights twice: `l1, l2` in the paper's absolute units (per bit of
weight storage, per Bit-SynOp), and `l1_rel, l2_rel` relative to the supernet's initial model
size and Bit-SynOps (what `--cost-weights relative`, the default, uses). The relative values are
the paper's absolute ones times the initial costs of the paper's own search supernet (C = 48,
T = 6, p = 0.8, uniform alpha/beta/psi, on uniform random input): CIFAR's 8-cell backbone,
4.67e6 bits and 8.59e8 Bit-SynOps, for large/medium/small, and the 6-cell Speech Commands one,
3.15e6 bits and 2.51e9 Bit-SynOps, for gsc (`benchmarks/preset_units.py` recomputes them). So a
preset charges the same share of the model on digits as the paper's does on CIFAR.
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
    "medium": Preset("medium", 5e-10, 5e-14, 0.8, 2.3e-3, 4.3e-5),
    "small": Preset("small", 1e-9, 1e-13, 0.9, 4.7e-3, 8.6e-5),
    "gsc": Preset("gsc", 1e-9, 1e-13, 0.7, 3.1e-3, 2.5e-4),
}


def get_preset(name: str) -> Preset:
    """The preset called `name`; an unknown name is an error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset '{name}' (known: {', '.join(PRESETS)})") from None
