"""inference.postprocess: threshold, largest 26-connected component, hole filling, border in mm."""

import nibabel as nib
import numpy as np
import pytest
from helpers_bids import DATA_DIR, data_available
from scipy import ndimage

from singlestrip_bids.inference.postprocess import apply_border, fill_holes, largest_component, postprocess_probability

needs_data = pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")


def _ball(shape, centre, radius_mm, voxel_sizes):
    grid = np.indices(shape).astype(float)
    distance = sum(((grid[a] - centre[a]) * voxel_sizes[a]) ** 2 for a in range(3))
    return np.sqrt(distance) <= radius_mm


def test_threshold_is_inclusive_and_keeps_largest_component():
    prob = np.zeros((30, 30, 30), np.float32)
    prob[2:12, 2:12, 2:12] = 0.5  # large block exactly at threshold
    prob[20:23, 20:23, 20:23] = 0.9  # small confident block
    prob[25, 2, 2] = 0.49
    mask, removed = postprocess_probability(prob, (1, 1, 1))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert removed == 1
    assert mask.sum() == 1000 and mask[2:12, 2:12, 2:12].all()


def test_corner_contact_is_one_component():
    prob = np.zeros((10, 10, 10), np.float32)
    prob[1:4, 1:4, 1:4] = 1
    prob[4:6, 4:6, 4:6] = 1  # touches the first block only at a corner voxel
    mask, removed = postprocess_probability(prob, (1, 1, 1))
    assert removed == 0 and mask.sum() == 27 + 8


def test_holes_filled():
    shell = _ball((40, 40, 40), (20, 20, 20), 15, (1, 1, 1)) & ~_ball((40, 40, 40), (20, 20, 20), 8, (1, 1, 1))
    mask, _ = postprocess_probability(shell.astype(np.float32), (1, 1, 1))
    assert np.array_equal(mask.astype(bool), _ball((40, 40, 40), (20, 20, 20), 15, (1, 1, 1)))


def test_empty_probability_gives_empty_mask():
    mask, removed = postprocess_probability(np.full((8, 8, 8), 0.2, np.float32), (1, 1, 1), border_mm=2)
    assert removed == 0 and not mask.any()


def _extent(mask, axis):
    present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    return present[-1] - present[0] + 1


@pytest.mark.parametrize("border_mm", [4.0, -4.0])
def test_border_is_in_mm_for_anisotropic_voxels(border_mm):
    sizes = (1.0, 1.0, 4.0)
    ball = _ball((60, 60, 20), (30, 30, 10), 16, sizes)
    mask, _ = postprocess_probability(ball.astype(np.float32), sizes, border_mm=border_mm)
    # Within the balls of radius 16 + border and that minus half a voxel diagonal (discretisation).
    slack = np.linalg.norm(sizes) / 2
    inner, outer = sorted([16 + border_mm, 16 + border_mm - slack * np.sign(border_mm)])
    assert not (_ball((60, 60, 20), (30, 30, 10), inner, sizes) & ~mask.astype(bool)).any()
    assert not (mask.astype(bool) & ~_ball((60, 60, 20), (30, 30, 10), outer, sizes)).any()
    step = int(np.sign(border_mm))
    assert _extent(mask, 0) == _extent(ball, 0) + 8 * step  # 4 mm = 4 voxels each side in x
    assert _extent(mask, 2) == _extent(ball, 2) + 2 * step  # 4 mm = 1 voxel each side in z


def test_erosion_reaches_the_array_edge():
    full = np.ones((10, 10, 10), bool)
    eroded = apply_border(full, (1, 1, 1), -2)
    assert eroded.sum() == 6 ** 3 and eroded[2:8, 2:8, 2:8].all()


@needs_data
def test_real_reference_masks():
    """A clean reference mask is a fixed point; FreeSurfer's speckled one loses its islands and holes."""
    clean = nib.load(DATA_DIR / "mrtrix_scripttest_sub01" / "sub-01_brainmask.nii.gz")
    data = np.asanyarray(clean.dataobj)
    mask, removed = postprocess_probability(data.astype(np.float32), clean.header.get_zooms())
    assert removed == 0 and np.array_equal(mask, data)

    path = DATA_DIR / "fs_training_t1" / "sub-01" / "brainmask_bin.nii.gz"
    speckled = np.asanyarray(nib.load(path).dataobj).astype(bool)
    mask, removed = postprocess_probability(speckled.astype(np.float32), (1, 1, 1))
    assert removed == 2
    assert ndimage.label(mask, np.ones((3, 3, 3)))[1] == 1
    assert np.array_equal(fill_holes(mask.astype(bool)), mask.astype(bool))
    changed = int(np.count_nonzero(speckled != mask.astype(bool)))
    assert 0 < changed < 0.01 * int(speckled.sum())


@needs_data
def test_fill_holes_matches_scipy():
    path = DATA_DIR / "ms_lesjak_longitudinal" / "patient01" / "study1_T2W_brainmask.nii.gz"
    mask = np.asanyarray(nib.load(path).dataobj).astype(bool)
    filled = fill_holes(mask)
    assert filled.sum() > mask.sum()
    assert np.array_equal(filled, ndimage.binary_fill_holes(mask))


@pytest.mark.parametrize("border_mm", [0.0, 3.0, -3.0])
def test_cropping_changes_nothing(border_mm):
    """Work in the bounding box equals work on the whole array, also for masks touching an edge."""
    rng = np.random.default_rng(1)
    prob = ndimage.gaussian_filter(rng.random((40, 36, 24)), 2)
    prob = (prob - prob.min()) / np.ptp(prob)
    sizes = (1.0, 1.5, 3.0)
    mask, _ = postprocess_probability(prob, sizes, threshold=0.45, border_mm=border_mm)
    whole, _ = largest_component(prob >= 0.45)
    expected = apply_border(ndimage.binary_fill_holes(whole), sizes, border_mm)
    assert whole.any() and np.array_equal(mask.astype(bool), expected)
