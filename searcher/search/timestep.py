"""Compressive timestep search (LitE-SNN Eq. 14 and 17).

psi holds one logit per candidate count t in 1..T. The output for t steps is the mean of the
first t per-step logits; Loss_CE = sum_t softmax(psi)_t CE(t) (Eq. 17). The spike count of a
layer weighs step t by w_t = sum_{t' >= t} softmax(psi)_{t'} (Eq. 14; see cost_model).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lsnn.cost_model import expected_timesteps, timestep_weights, weighted_spike_count

__all__ = ["prefix_mean_logits", "ce_per_timestep", "timestep_ce", "prefix_accuracy", "decoded_T",
           "timestep_weights", "weighted_spike_count", "expected_timesteps"]


def prefix_mean_logits(logits: torch.Tensor) -> torch.Tensor:
    """[T, B, K] per-step logits -> [T, B, K], row t = mean of steps 1..t+1 (Eq. 16 for every t)."""
    T = logits.shape[0]
    steps = torch.arange(1, T + 1, dtype=logits.dtype, device=logits.device).view(T, *([1] * (logits.dim() - 1)))
    return logits.cumsum(0) / steps


def ce_per_timestep(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CE(t) for t = 1..T (batch mean) -> [T]."""
    T, B, K = logits.shape
    m = prefix_mean_logits(logits)
    ce = F.cross_entropy(m.reshape(T * B, K), y.repeat(T), reduction="none")
    return ce.view(T, B).mean(1)


def timestep_ce(logits: torch.Tensor, y: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """Eq. 17: sum_t softmax(psi)_t CE(t)."""
    return (torch.softmax(psi, 0) * ce_per_timestep(logits, y)).sum()


@torch.no_grad()
def prefix_accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of correct predictions using the first t steps, for t = 1..T -> [T] (counts)."""
    pred = prefix_mean_logits(logits).argmax(-1)     # [T, B]
    return (pred == y.unsqueeze(0)).sum(1)


def decoded_T(psi: torch.Tensor) -> int:
    """T = argmax psi + 1 (the candidate counts are 1..T); ties go to the longer T."""
    T = psi.numel()
    return T - int(torch.argmax(psi.detach().flip(0)).item())
