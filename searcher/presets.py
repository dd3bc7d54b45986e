"""The paper's search presets (Sec. 4.1): (l1, l2, prune rate p) per model scale."""
from __future__ import annotations

from dataclasses import dataclass

from lsnn.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """Eq. 15 coefficients and the pruning rate of one LitE-SNN scale."""

    name: str
    l1: float   # MEM coefficient (per bit of weight storage)
    l2: float   # COMP coefficient (per Bit-SynOp)
    p: float    # pruning rate of every CompConv


PRESETS: dict[str, Preset] = {
    "large": Preset("large", 0.0, 0.0, 0.5),
    "medium": Preset("medium", 5e-10, 5e-14, 0.8),
    "small": Preset("small", 1e-9, 1e-13, 0.9),
    "gsc": Preset("gsc", 1e-9, 1e-13, 0.7),
}


def get_preset(name: str) -> Preset:
    """The preset called `name`; an unknown name is an error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset '{name}' (known: {', '.join(PRESETS)})") from None
