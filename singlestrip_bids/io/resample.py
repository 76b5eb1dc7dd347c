"""Trilinear resampling of a volume from one voxel grid onto another, optionally Gaussian-smoothed first.

Grids whose axes line up (each target axis along one source axis: scaling, shifts, flips and axis
permutations, as between a scanner's or FreeSurfer's grid and the RAS working grid) are resampled
as three small matrix products, one per axis, with the smoothing folded into them; that is several
times faster than a whole-volume filter followed by ``scipy.ndimage.affine_transform``, and gives
the same values (up to float32 rounding). Oblique grids take the scipy path.
"""

import numpy as np
from scipy import ndimage

_TRUNCATE = 4.0  # scipy's gaussian_filter default: the kernel reaches 4 sigma
_ALIGNED_TOLERANCE = 1e-6


def resample(volume, source_affine, target_shape, target_affine, *, order: int = 1, sigma=None) -> np.ndarray:
    """``volume`` (X, Y, Z on ``source_affine``, voxel → mm) on the grid ``target_shape`` /
    ``target_affine``: float32. Samples outside the source volume are 0 (scipy's ``constant``
    mode). ``sigma``: Gaussian smoothing (3 values, in source voxels; borders reflected) applied
    before sampling, as ``scipy.ndimage.gaussian_filter`` would; ``order``: 0 or 1 (nearest or
    trilinear), the separable path being for trilinear only.
    """
    volume = np.asarray(volume, dtype=np.float32)
    sigma = np.zeros(3) if sigma is None else np.asarray(sigma, dtype=float)
    index_map = np.linalg.inv(source_affine) @ target_affine  # target voxel → source voxel
    axes = _aligned_axes(index_map[:3, :3]) if order == 1 else None
    if axes is None:
        if sigma.any():
            volume = ndimage.gaussian_filter(volume, sigma)
        return ndimage.affine_transform(volume, index_map[:3, :3], offset=index_map[:3, 3],
                                        output_shape=tuple(target_shape), order=order, mode="constant",
                                        cval=0.0, prefilter=False)
    # Work on a C-ordered view (a NIfTI's data is usually Fortran-ordered: then its transpose), so
    # that each axis' product runs on the array's own memory without a reordering copy.
    reverse = not volume.flags.c_contiguous and volume.flags.f_contiguous
    result = volume.T if reverse else np.ascontiguousarray(volume)
    for target_axis, source_axis in enumerate(axes):
        positions = index_map[source_axis, target_axis] * np.arange(target_shape[target_axis]) \
            + index_map[source_axis, 3]
        weights = axis_weights(positions, volume.shape[source_axis], sigma[source_axis])
        result = _along(result, weights, 2 - source_axis if reverse else source_axis)
    if reverse:
        result = result.T
    return np.ascontiguousarray(np.transpose(result, axes), dtype=np.float32)


def _along(array, weights, axis: int) -> np.ndarray:
    """``weights`` (M, N) applied along ``axis`` (length N) of a C-ordered 3D ``array``: C-ordered,
    that axis now of length M."""
    if axis == 0:
        return (weights @ array.reshape(array.shape[0], -1)).reshape(-1, *array.shape[1:])
    if axis == 1:
        return np.matmul(weights, array)
    return (array.reshape(-1, array.shape[2]) @ weights.T).reshape(*array.shape[:2], -1)


def _aligned_axes(matrix) -> tuple[int, ...] | None:
    """For a 3×3 target→source index matrix with one non-zero per row and column: the source axis
    each target axis reads (``axes[target] = source``); ``None`` for an oblique matrix."""
    matrix = np.asarray(matrix, dtype=float)
    scale = np.abs(matrix).max()
    nonzero = np.abs(matrix) > _ALIGNED_TOLERANCE * scale
    if not (nonzero.sum(axis=0) == 1).all() or not (nonzero.sum(axis=1) == 1).all():
        return None
    return tuple(int(np.flatnonzero(nonzero[:, target])[0]) for target in range(3))


def axis_weights(positions, n_source: int, sigma: float = 0.0) -> np.ndarray:
    """(len(positions), n_source) float32: linear interpolation at ``positions`` (source voxel
    indices; 0 outside [0, n_source − 1]) of the source line smoothed by a Gaussian of ``sigma``
    voxels (reflected at the ends, truncated at 4 sigma, as scipy's ``gaussian_filter1d``)."""
    positions = np.asarray(positions, dtype=float)
    inside = (positions >= 0) & (positions <= n_source - 1)
    low = np.clip(np.floor(positions).astype(int), 0, n_source - 1)
    fraction = np.where(inside, positions - low, 0.0)
    interpolation = np.zeros((len(positions), n_source))
    rows = np.arange(len(positions))
    np.add.at(interpolation, (rows, low), np.where(inside, 1.0 - fraction, 0.0))
    high = np.minimum(low + 1, n_source - 1)
    np.add.at(interpolation, (rows, high), np.where(inside & (low + 1 < n_source), fraction, 0.0))
    if sigma > 0:
        interpolation = interpolation @ _gaussian_matrix(n_source, sigma)
    return interpolation.astype(np.float32)


def smoothing_radius(sigma: float) -> int:
    """Voxels the Gaussian of ``sigma`` voxels reaches on each side (scipy's ``gaussian_filter1d``)."""
    return int(_TRUNCATE * sigma + 0.5)


def _gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n): row i holds the weights of the smoothed line's voxel i over the source voxels."""
    radius = smoothing_radius(sigma)
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    sources = np.arange(n)[:, None] + taps[None, :]
    sources = np.mod(sources, 2 * n)  # scipy's "reflect": d c b a | a b c d | d c b a
    sources = np.where(sources >= n, 2 * n - 1 - sources, sources)
    matrix = np.zeros((n, n))
    np.add.at(matrix, (np.repeat(np.arange(n), len(taps)), sources.ravel()), np.tile(kernel, n))
    return matrix
