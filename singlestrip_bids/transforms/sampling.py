"""Resampling volumes at voxel positions, and smooth random fields (shared by every spatial transform)."""

import math

import numpy as np
import torch
import torch.nn.functional as F

from singlestrip_bids.transforms.ranges import torch_generator


def identity_grid(shape, device) -> torch.Tensor:
    """The voxel indices of a grid of ``shape``: (1, X, Y, Z, 3)."""
    axes = [torch.arange(s, dtype=torch.float32, device=device) for s in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)[None]


def sample_volume(volume: torch.Tensor, positions: torch.Tensor, in_shape, mode: str) -> torch.Tensor:
    """Sample (1, C, *in_shape) at voxel ``positions`` (1, X, Y, Z, 3); outside → 0.

    ``mode``: ``"bilinear"`` (trilinear) or ``"nearest"``.
    """
    size = torch.tensor([s - 1 for s in in_shape], dtype=torch.float32, device=positions.device)
    normalised = 2.0 * positions / size.clamp(min=1) - 1.0
    # grid_sample wants (x, y, z) = (last, middle, first) volume axis
    return F.grid_sample(volume, normalised.flip(-1), mode=mode, padding_mode="zeros", align_corners=True)


def coarse_shape(shape, spacing_vox: float) -> tuple:
    """The control-point grid of a smooth field with one point every ``spacing_vox`` voxels."""
    return tuple(max(2, int(math.ceil(s / spacing_vox)) + 1) for s in shape)


def smooth_field(seed: int, std: float, channels: int, coarse, out_shape, device) -> torch.Tensor:
    """Gaussian noise of ``std`` on the grid ``coarse``, upsampled trilinearly: (1, C, *out_shape)."""
    values = torch.randn((1, channels, *coarse), generator=torch_generator(seed, device), device=device)
    return F.interpolate(values * std, size=tuple(out_shape), mode="trilinear", align_corners=True)


def warp(volume: torch.Tensor, index_map: np.ndarray, out_shape, mode: str = "bilinear") -> torch.Tensor:
    """Resample a volume at the points ``index_map`` sends the output voxels to; outside → 0.

    ``volume``: (X, Y, Z) tensor; ``index_map``: 4×4 matrix from output voxel indices to input
    voxel indices. Returns a float tensor of shape ``out_shape`` on the volume's device.
    """
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in out_shape], indexing="ij"), -1)
    points = grid @ index_map[:3, :3].T + index_map[:3, 3]
    positions = torch.as_tensor(points[None], dtype=torch.float32, device=volume.device)
    return sample_volume(volume[None, None].float(), positions, volume.shape, mode)[0, 0]


def centred_index_map(matrix_mm: np.ndarray, out_shape, out_spacing: float, centre_in, in_spacing: float):
    """Index map for :func:`warp` that samples a volume transformed by ``matrix_mm`` (4×4, mm).

    The output grid (``out_shape`` voxels of ``out_spacing`` mm) is centred on ``centre_in`` (input
    voxel indices; input voxels of ``in_spacing`` mm); the content appears transformed by
    ``matrix_mm`` about that centre.
    """
    out_centre = (np.asarray(out_shape, dtype=float) - 1.0) / 2.0
    to_mm = np.diag([out_spacing] * 3 + [1.0])
    to_mm[:3, 3] = -out_spacing * out_centre
    to_input = np.diag([1.0 / in_spacing] * 3 + [1.0])
    to_input[:3, 3] = centre_in
    return to_input @ np.linalg.inv(matrix_mm) @ to_mm
