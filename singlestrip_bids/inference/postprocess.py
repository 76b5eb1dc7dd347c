"""Brain probability → binary brain mask on the native grid (SynthStrip's post-processing)."""

import numpy as np
from scipy import ndimage

from singlestrip_bids.model.bundle import MASK_THRESHOLD

_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def largest_component(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Keep the largest 26-connected component of a boolean (X, Y, Z) array.

    Returns ``(mask, number of components removed)``; an empty mask stays empty.
    """
    labels, count = ndimage.label(mask, structure=_CONNECTIVITY_26)
    if count <= 1:
        return mask.astype(bool), 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes)), count - 1


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the 3D holes of a boolean mask: background not 6-connected to the array's faces.

    Same result as ``scipy.ndimage.binary_fill_holes``, by one labelling instead of iterated dilations.
    """
    background, _ = ndimage.label(~mask)
    faces = np.concatenate([np.moveaxis(background, axis, 0)[[0, -1]].ravel() for axis in range(3)])
    return ~np.isin(background, np.unique(faces[faces > 0]))


def apply_border(mask: np.ndarray, voxel_sizes, border_mm: float) -> np.ndarray:
    """Grow (``border_mm`` > 0) or shrink (< 0) a boolean mask by a distance in mm.

    Uses the Euclidean distance transform with the (anisotropic) voxel sizes in mm, so the border
    is the same physical width along every axis.
    """
    if border_mm == 0 or not mask.any():
        return mask
    sampling = [float(size) for size in voxel_sizes]
    if border_mm > 0:
        return ndimage.distance_transform_edt(~mask, sampling=sampling) <= border_mm
    # Pad so that voxels on the array edge count as next to background.
    padded = np.pad(mask, 1, constant_values=False)
    inside = ndimage.distance_transform_edt(padded, sampling=sampling)[1:-1, 1:-1, 1:-1]
    return inside > -border_mm


def box_around(mask: np.ndarray, margins) -> tuple[slice, ...]:
    """Bounding box of a non-empty mask grown by ``margins`` voxels per axis, within the array."""
    box = []
    for axis, margin in enumerate(margins):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(max(present[0] - margin, 0), min(present[-1] + margin + 1, mask.shape[axis])))
    return tuple(box)


def border_margins(voxel_sizes, border_mm: float) -> list[int]:
    """Voxels of background per axis that a mask grown by ``border_mm`` needs around it (one more
    than the growth, so that hole filling sees the background around the mask)."""
    return [int(np.ceil(max(border_mm, 0.0) / size)) + 1 for size in voxel_sizes]


def postprocess_probability(prob, voxel_sizes, *, threshold=MASK_THRESHOLD,
                            border_mm=0.0) -> tuple[np.ndarray, int]:
    """Threshold P(brain), keep the largest 26-connected component, fill holes, apply the border.

    ``prob``: float (X, Y, Z) in [0, 1] on the native grid; ``voxel_sizes``: 3 sizes in mm;
    voxels with ``prob >= threshold`` are brain. Returns ``(mask uint8 0/1 (X, Y, Z),
    number of components removed)``.
    """
    mask, removed = largest_component(np.asarray(prob) >= threshold)
    result = np.zeros(mask.shape, np.uint8)
    if not mask.any():
        return result, removed
    # Work in the mask's bounding box with a background margin wide enough for the border:
    # hole filling and distance transforms then give the same result as on the whole array.
    box = box_around(mask, border_margins(voxel_sizes, border_mm))
    result[box] = apply_border(fill_holes(mask[box]), voxel_sizes, border_mm)
    return result, removed
