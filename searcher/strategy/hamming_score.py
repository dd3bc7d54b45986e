"""The training-free architecture score SpikeNAS's search builds on (SNASNet, Kim et al. 2022,
after Mellor et al.'s NAS without training): at initialisation, a net whose LIF layers give
different inputs different spike patterns can tell them apart, which predicts how well it trains.

For a batch of B inputs, each population's spikes over all its neurons and steps are one binary
code c_i per input. The kernel K[i, j] = sum over populations of (N - HammingDistance(c_i, c_j)),
N the code length, counts the positions where inputs i and j agree; the score is log det K (K is
a sum of Gram matrices, so det K >= 0; identical codes make it singular, score -inf).
"""
from __future__ import annotations

import math
from typing import Iterable

import torch


def agreement_kernel(codes: torch.Tensor) -> torch.Tensor:
    """K[i, j] = number of positions where binary codes i and j agree; codes [B, N] in {0, 1}.
    Computed in float64 (exact for N < 2^53)."""
    c = codes.reshape(codes.shape[0], -1).to(torch.float64)
    return c @ c.T + (1.0 - c) @ (1.0 - c).T


def hamming_score(spikes: Iterable[torch.Tensor]) -> float:
    """log det of the summed agreement kernels of every population's spikes [T, B, ...] (B inputs)."""
    K = None
    for s in spikes:
        codes = s.transpose(0, 1).reshape(s.shape[1], -1)      # [B, T * neurons]
        k = agreement_kernel(codes)
        K = k if K is None else K + k
    if K is None:
        raise ValueError("hamming_score needs the spikes of at least one population")
    sign, logdet = torch.linalg.slogdet(K)
    return float(logdet) if float(sign) > 0 else -math.inf
