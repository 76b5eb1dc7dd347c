"""Overlap and distance between binary masks (METHOD.md §8)."""

import numpy as np


def _as_pair(a, b):
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return a, b


def dice(a, b) -> float:
    """Dice coefficient of two boolean arrays of the same shape; 1.0 when both are empty."""
    a, b = _as_pair(a, b)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with at least one face neighbour outside it (the grid edge counts as outside)."""
    from scipy import ndimage

    padded = np.pad(mask, 1)
    eroded = ndimage.binary_erosion(padded, structure=ndimage.generate_binary_structure(mask.ndim, 1))
    return (padded & ~eroded)[(slice(1, -1),) * mask.ndim]


def surface_distances(a, b, voxel_sizes) -> np.ndarray:
    """Distances in mm from every surface voxel of ``a`` to the nearest surface voxel of ``b`` and back.

    ``a``, ``b``: boolean arrays (X, Y, Z) on the same grid, both non-empty; ``voxel_sizes``: the grid's
    spacing in mm per axis (anisotropic voxels are honoured). Returns a 1D float array of length
    ``n_surface(a) + n_surface(b)``. Exact nearest neighbours (k-d tree over surface voxel centres).
    """
    from scipy.spatial import cKDTree

    a, b = _as_pair(a, b)
    if not a.any() or not b.any():
        raise ValueError("surface distances need two non-empty masks")
    spacing = np.broadcast_to(np.asarray(voxel_sizes, dtype=float), (a.ndim,))
    # Both surfaces lie inside the bounding box of the union (plus one voxel): erode only that.
    corners = np.argwhere(a | b)
    box = tuple(slice(max(lo - 1, 0), hi + 2) for lo, hi in zip(corners.min(0), corners.max(0)))
    points_a = np.argwhere(_surface(a[box])) * spacing
    points_b = np.argwhere(_surface(b[box])) * spacing
    to_b, _ = cKDTree(points_b).query(points_a)
    to_a, _ = cKDTree(points_a).query(points_b)
    return np.concatenate([to_b, to_a])


def hd95(a, b, voxel_sizes) -> float:
    """95th percentile of the symmetric surface distance in mm between two masks on one grid.

    ``voxel_sizes``: spacing in mm per axis (e.g. ``img.header.get_zooms()[:3]``). 0.0 when both masks
    are empty, ``inf`` when exactly one is.
    """
    a, b = _as_pair(a, b)
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return float("inf")
    return float(np.percentile(surface_distances(a, b, voxel_sizes), 95))
