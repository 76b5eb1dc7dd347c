"""Move images between their native grid and the model's working grid.

The working grid is RAS-aligned, isotropic at ``voxel_size`` mm, covers the whole field of view of
the input and has every size padded to a multiple of ``multiple`` voxels (what the U-Net's pooling
needs). Resampling is a single trilinear interpolation each way (``io.resample``), so a mask
predicted on the working grid comes back on the input's exact voxel grid.
"""

from dataclasses import dataclass

import numpy as np

from singlestrip_bids.io.resample import resample, smoothing_radius


@dataclass(frozen=True)
class Conformed:
    """An image resampled to the working grid (back to the native grid: :func:`unconform`)."""

    data: np.ndarray  #: float32 (X, Y, Z), RAS, isotropic voxels
    affine: np.ndarray  #: 4x4 working voxel -> world (mm)


def reference_volume(img) -> np.ndarray:
    """The 3D float32 volume to strip: the image itself, or the mean over time of a 4D series.

    Non-finite voxels (NaN, ±Inf) are set to 0 so that they fall outside the brain.
    """
    return native_volume(img).astype(np.float32, copy=False)


def native_volume(img) -> np.ndarray:
    """:func:`reference_volume` without a copy where none is needed: an integer 3D image's own array
    (finite by nature, its own data type), else the float32 volume. For callers that read only part of it."""
    raw = np.asanyarray(img.dataobj)
    if raw.ndim == 3 and not np.issubdtype(raw.dtype, np.floating):
        return raw
    data = np.asarray(raw, dtype=np.float32)
    if data.ndim == 4:
        finite = np.where(np.isfinite(data), data, 0.0)
        data = finite.mean(axis=3, dtype=np.float32)
    data = np.squeeze(data) if data.ndim > 3 else data
    return np.where(np.isfinite(data), data, 0.0).astype(np.float32, copy=False)


def working_grid(native_shape, native_affine, voxel_size: float, multiple: int):
    """Shape and affine of the RAS working grid that covers the native field of view.

    Returns ``(shape, affine)``; the grid is centred on the native field of view and each size is
    rounded up to a multiple of ``multiple`` voxels.
    """
    corners = np.array(
        [[i, j, k, 1.0] for i in (-0.5, native_shape[0] - 0.5)
         for j in (-0.5, native_shape[1] - 0.5) for k in (-0.5, native_shape[2] - 0.5)]
    )
    world = (native_affine @ corners.T)[:3].T
    low, high = world.min(axis=0), world.max(axis=0)
    extent_vox = np.ceil((high - low) / voxel_size - 1e-6).astype(int)
    shape = tuple(int(np.ceil(max(e, 1) / multiple) * multiple) for e in extent_vox)
    centre = (low + high) / 2.0
    affine = np.diag([voxel_size, voxel_size, voxel_size, 1.0])
    affine[:3, 3] = centre - voxel_size * (np.array(shape) - 1) / 2.0
    return shape, affine


def conform(img, voxel_size: float = 2.0, multiple: int = 16) -> Conformed:
    """Resample a 3D or 4D nibabel image to the working grid (intensities not normalised)."""
    volume = reference_volume(img)
    native_affine = np.asarray(img.affine, dtype=float)
    shape, affine = working_grid(volume.shape, native_affine, voxel_size, multiple)
    data = resample(volume, native_affine, shape, affine, sigma=_antialias_sigma(native_affine, voxel_size))
    return Conformed(data, affine)


def _antialias_sigma(native_affine, voxel_size: float) -> np.ndarray:
    """Anti-aliasing before downsampling: a sigma of ~0.4 working voxels per axis, in native voxels."""
    zooms = np.sqrt((np.asarray(native_affine)[:3, :3] ** 2).sum(axis=0))
    return np.clip(0.4 * (voxel_size / zooms - 1.0), 0.0, None)


def conform_mask(mask_img, voxel_size: float, multiple: int) -> np.ndarray:
    """A native binary mask on the working grid: bool (X, Y, Z), as ``conform`` resamples it, kept at >= 0.5.

    Only the box around the mask is filtered and resampled, grown past the reach of the anti-aliasing
    kernel and of the interpolation, so that everything outside it is 0 as on the whole grid: the
    same mask, several times faster for a brain in a large field of view.
    """
    volume = native_volume(mask_img)  # an integer mask is converted to float in the box only
    native_affine = np.asarray(mask_img.affine, dtype=float)
    shape, affine = working_grid(volume.shape, native_affine, voxel_size, multiple)
    present = [np.flatnonzero(volume.any(axis=tuple(other for other in range(3) if other != axis)))
               for axis in range(3)]
    if any(indices.size == 0 for indices in present):
        return np.zeros(shape, dtype=bool)
    sigma = _antialias_sigma(native_affine, voxel_size)
    margin = np.array([smoothing_radius(value) for value in sigma]) + 2  # + the trilinear reach
    start = np.maximum([indices[0] for indices in present] - margin, 0)
    stop = np.minimum([indices[-1] + 1 for indices in present] + margin, volume.shape)
    box = volume[tuple(slice(a, b) for a, b in zip(start, stop))]
    box_affine = native_affine.copy()
    box_affine[:3, 3] += native_affine[:3, :3] @ start
    return resample(box, box_affine, shape, affine, sigma=sigma) >= 0.5


def _native_box(volume, affine, native_shape, native_affine, floor: float) -> tuple[slice, ...] | None:
    """Native index box holding every voxel whose trilinear sample of ``volume`` can reach ``floor``.

    A trilinear sample mixes the 8 working voxels around it, so it stays below ``floor`` unless one
    of them is at least ``floor``: the box of those voxels grown by one working voxel covers them all.
    ``None`` when no working voxel reaches ``floor``.
    """
    present = np.argwhere(volume >= floor)
    if present.size == 0:
        return None
    low, high = present.min(axis=0) - 1, present.max(axis=0) + 1
    corners = np.array([[x, y, z, 1.0] for x in (low[0], high[0]) for y in (low[1], high[1])
                        for z in (low[2], high[2])])
    native = (np.linalg.inv(native_affine) @ affine @ corners.T)[:3].T
    start = np.clip(np.floor(native.min(axis=0)).astype(int), 0, native_shape)
    stop = np.clip(np.ceil(native.max(axis=0)).astype(int) + 1, 0, native_shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))


def unconform(volume, affine, native_shape, native_affine, order: int = 1) -> np.ndarray:
    """Resample a working-grid volume back to the native grid; returns float32 ``native_shape``."""
    return resample(volume, affine, native_shape, native_affine, order=order)


def unconform_box(volume, affine, native_shape, native_affine, floor: float, margin=(0, 0, 0)):
    """Trilinear :func:`unconform` of only the native box where values can reach ``floor``, grown by
    ``margin`` native voxels per axis (within the volume): ``(box, float32 values there)``, every value
    ``>= floor`` exactly as the whole resample gives it and 0 beyond the box; ``(None, None)`` when no
    working voxel reaches ``floor``. Several times faster for a brain inside a large field of view.
    """
    box = _native_box(volume, affine, native_shape, native_affine, floor)
    if box is None:
        return None, None
    box = tuple(slice(max(part.start - grow, 0), min(part.stop + grow, size))
                for part, grow, size in zip(box, margin, native_shape))
    shift = np.eye(4)
    shift[:3, 3] = [part.start for part in box]
    return box, resample(volume, affine, [part.stop - part.start for part in box], native_affine @ shift)
