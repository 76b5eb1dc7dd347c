"""Soft Dice loss between predicted brain probability and the target mask."""

import torch


def soft_dice_loss(prob: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                   eps: float = 1e-6) -> torch.Tensor:
    """1 − soft Dice, averaged over the batch; ``prob`` and ``target`` are (B, 1, X, Y, Z) in [0, 1].

    ``weight`` (same shape, in [0, 1]; None: all 1) scales each voxel's share of the overlap and of
    the totals: voxels of weight 0 are left out of the Dice.
    """
    dims = tuple(range(1, prob.ndim))
    if weight is not None:
        prob, target = prob * weight, target * weight
    overlap = (prob * target).sum(dims)
    total = prob.sum(dims) + target.sum(dims)
    return (1.0 - (2.0 * overlap + eps) / (total + eps)).mean()
