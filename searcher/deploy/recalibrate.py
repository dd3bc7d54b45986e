"""Re-estimate BN running statistics for the deployed form, population by population.

In the first retraining phase every population is trained with BN batch statistics, and its
running statistics follow the *training* form of the populations before it. The deployed form
(BN folded with running statistics, integer bias and threshold) changes those populations'
spikes, so a later population's running statistics describe inputs it never sees on the chip:
accuracy drops when the retraining switches to the frozen (deployed) form. `recalibrate_bn`
walks the populations in order: each one's statistics are measured on a calibration batch
whose inputs already come from the deployed form of the populations before it, then that
population is frozen and computes its deployed spikes for the next (BN re-estimation as in
post-training quantization).
"""
from __future__ import annotations

import torch

from lsnn.errors import ConfigError
from lsnn.searcher.deploy.layers import Population
from lsnn.searcher.deploy.net import DeployNet

PASSES = 2     # the fold factor (and with it the weights' quantization step) depends on the
#                statistics, so a second pass measures them under the first pass's fold


@torch.no_grad()
def recalibrate_bn(net: DeployNet, x: torch.Tensor, passes: int = PASSES) -> None:
    """Set every population's BN running statistics to the batch statistics of `x` (float
    [B, C, H, W] in [0, 1]) seen through the deployed form of the populations before it.

    Leaves `net` with BN frozen (the deployed form) and in the train/eval mode it was in; the
    weights, masks and thresholds are not touched."""
    if x.shape[0] < 2:
        raise ConfigError(f"recalibrate_bn: need at least 2 samples for batch statistics, got {x.shape[0]}")
    was_training = net.training
    net.train()
    net.set_bn_frozen(True)

    def measure(model: DeployNet, pop: Population, acts: dict) -> None:
        if not pop.convs:
            return
        B = x.shape[0]
        pop.bn_frozen = False
        momenta = [c.bn.momentum for c in pop.convs]
        for c in pop.convs:
            c.bn.momentum = None          # cumulative average: after a reset, exactly one batch's statistics
        for _ in range(passes):
            for c in pop.convs:
                c.bn.reset_running_stats()
            pop.current(acts, model.T, B)
        for c, m in zip(pop.convs, momenta):
            c.bn.momentum = m
        pop.bn_frozen = True

    try:
        net.forward_all(x, hook=measure)
    finally:
        net.train(was_training)
