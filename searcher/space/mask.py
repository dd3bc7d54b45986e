"""Learned pruning mask (HYDRA): keep the top (1 - p) weights by |score|, straight-through to scores."""
from __future__ import annotations

import torch


class _TopKMask(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores: torch.Tensor, keep: float):  # type: ignore[override]
        n = scores.numel()
        k = max(1, int(round(keep * n))) if keep > 0 else 0
        flat = scores.detach().abs().flatten()
        mask = torch.zeros_like(flat)
        if k >= n:
            mask.fill_(1.0)
        elif k > 0:
            idx = torch.topk(flat, k, sorted=False).indices
            mask[idx] = 1.0
        return mask.view_as(scores)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        return g, None


def topk_mask(scores: torch.Tensor, prune_rate: float) -> torch.Tensor:
    """Binary mask keeping round((1 - p) * n) entries with the largest |score| (at least one)."""
    if not 0.0 <= prune_rate < 1.0:
        raise ValueError(f"prune rate must be in [0, 1), got {prune_rate}")
    return _TopKMask.apply(scores, 1.0 - prune_rate)
