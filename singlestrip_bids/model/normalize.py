"""The intensity normalisation the network always sees (inference and synthesis alike)."""

import torch


def normalize_intensity(x: torch.Tensor, percentile: float = 99.0) -> torch.Tensor:
    """Per volume: (x − min) / (p99 − min), clipped to [0, 1].

    ``x`` has shape (..., X, Y, Z); every leading index is normalised on its own.
    """
    flat = x.reshape(-1, x.shape[-3] * x.shape[-2] * x.shape[-1]).float()
    low = flat.min(dim=1).values
    k = max(1, int(round(percentile / 100.0 * flat.shape[1])))
    high = flat.kthvalue(k, dim=1).values
    scale = torch.clamp(high - low, min=1e-6)
    out = ((flat - low[:, None]) / scale[:, None]).clamp_(0.0, 1.0)
    return out.reshape(x.shape)
