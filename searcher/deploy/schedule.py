"""What retraining epoch e does: its learning rate and which form of the network it trains.

Epochs run through up to four phases, in order (each a config field, all optional):
1. `warmup_epochs`: the lr rises linearly to `lr` (then cosine to `lr_min` over the rest);
2. `float_epochs`: the float LIF (Eq. 1) instead of the chip's integer LIF, which is several
   times cheaper per step; then the integer LIF for the rest of the run (deploy-exact);
3. `prune_ramp_epochs`: the pruning rate rises linearly from 0 to the genotype's p;
4. the last `n_freeze` epochs: BN statistics and the mask frozen, so the training forward is the
   deployed forward.
Only an epoch that ends with the deployed form (final neuron, full pruning) may be kept as the
best one: its eval forward is exactly what the exporter writes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Phase:
    """The settings of one retraining epoch."""

    lr: float
    lif_mode: str           # "float" or "lava"
    prune_progress: float   # fraction of the genotype's prune rate in force
    frozen: bool            # BN statistics and mask frozen
    deployable: bool        # this epoch's eval forward is the deployed network


def lr_at(cfg: Any, epoch: int) -> float:
    """Linear warm-up over `cfg.warmup_epochs` (epoch 0 at lr / (w + 1)), then cosine from lr to lr_min."""
    w = int(getattr(cfg, "warmup_epochs", 0))
    if epoch < w:
        return cfg.lr * (epoch + 1) / (w + 1)
    span = cfg.epochs - w
    if span <= 0:
        return cfg.lr
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * (epoch - w) / span))


def phase_at(cfg: Any, epoch: int) -> Phase:
    """The Phase of 0-based `epoch` under RetrainConfig `cfg`."""
    lif = cfg.lif_mode
    if lif == "lava" and epoch < int(cfg.float_epochs):
        lif = "float"
    ramp = int(cfg.prune_ramp_epochs)
    progress = 1.0 if ramp <= 0 else min(1.0, (epoch + 1) / ramp)
    frozen = epoch >= cfg.epochs - cfg.n_freeze
    return Phase(lr=lr_at(cfg, epoch), lif_mode=lif, prune_progress=progress, frozen=frozen,
                 deployable=lif == cfg.lif_mode and progress >= 1.0)


def apply_phase(net: Any, phase: Phase, learn_mask: bool) -> None:
    """Put DeployNet `net` into the form `phase` trains."""
    net.set_lif_mode(phase.lif_mode)
    net.set_prune_progress(phase.prune_progress)
    net.set_bn_frozen(phase.frozen)
    for s in net.mask_parameters():
        s.requires_grad_(learn_mask and not phase.frozen)
