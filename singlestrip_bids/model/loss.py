"""Soft Dice loss between predicted brain probability and the target mask."""

import torch


def soft_dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1 − soft Dice, averaged over the batch; ``prob`` and ``target`` are (B, 1, X, Y, Z) in [0, 1]."""
    dims = tuple(range(1, prob.ndim))
    overlap = (prob * target).sum(dims)
    total = prob.sum(dims) + target.sum(dims)
    return (1.0 - (2.0 * overlap + eps) / (total + eps)).mean()
