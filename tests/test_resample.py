"""The separable resampler gives scipy's filter-then-affine_transform values on aligned grids."""

import nibabel as nib
import numpy as np
import pytest
from helpers_bids import DATA_DIR
from scipy import ndimage

from singlestrip_bids.io.conform import _antialias_sigma, working_grid
from singlestrip_bids.io.resample import axis_weights, resample


def scipy_resample(volume, source_affine, shape, target_affine, sigma):
    smoothed = ndimage.gaussian_filter(volume, sigma) if np.any(sigma) else volume
    index_map = np.linalg.inv(source_affine) @ target_affine
    return ndimage.affine_transform(smoothed, index_map[:3, :3], offset=index_map[:3, 3], output_shape=shape,
                                    order=1, mode="constant", cval=0.0, prefilter=False)


def random_aligned_affine(rng):
    """Voxel sizes 0.1–5 mm, a random axis permutation with flips and a shift."""
    affine = np.eye(4)
    affine[:3, :3] = 0
    permutation, signs, zooms = rng.permutation(3), rng.choice([-1, 1], 3), rng.uniform(0.1, 5, 3)
    for row in range(3):
        affine[row, permutation[row]] = signs[row] * zooms[permutation[row]]
    affine[:3, 3] = rng.normal(0, 10, 3)
    return affine


@pytest.mark.parametrize("order", ["C", "F"])
def test_aligned_grids_match_scipy_for_random_sizes_orientations_and_smoothing(order):
    rng = np.random.default_rng(7)
    for _ in range(25):
        volume = np.asarray(rng.random(rng.integers(1, 24, 3)), dtype=np.float32, order=order)
        affine = random_aligned_affine(rng)
        voxel_size = rng.uniform(0.2, 6)
        shape, target = working_grid(volume.shape, affine, voxel_size, int(rng.choice([1, 8, 16])))
        sigma = _antialias_sigma(affine, voxel_size)
        expected = scipy_resample(volume, affine, shape, target, sigma)
        result = resample(volume, affine, shape, target, sigma=sigma)
        assert result.shape == expected.shape and result.dtype == np.float32 and result.flags.c_contiguous
        np.testing.assert_allclose(result, expected, atol=2e-6)


def test_oblique_grids_take_scipys_path():
    rng = np.random.default_rng(3)
    volume = rng.random((20, 18, 9)).astype(np.float32)
    affine = np.diag([1.0, 1.2, 4.0, 1.0])
    angle = 0.2
    affine[:3, :3] = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]) \
        @ affine[:3, :3]
    shape, target = working_grid(volume.shape, affine, 2.0, 8)
    sigma = _antialias_sigma(affine, 2.0)
    np.testing.assert_array_equal(resample(volume, affine, shape, target, sigma=sigma),
                                  scipy_resample(volume, affine, shape, target, sigma))


def test_axis_weights_interpolate_inside_and_give_zero_outside():
    weights = axis_weights([-0.5, 0.0, 1.25, 3.0, 3.0001], 4)
    line = np.array([10.0, 20.0, 30.0, 40.0], np.float32)
    np.testing.assert_allclose(weights @ line, [0.0, 10.0, 22.5, 40.0, 0.0], atol=1e-5)
    smoothed = axis_weights(np.arange(4.0), 4, sigma=1.0)
    np.testing.assert_allclose(smoothed @ line, ndimage.gaussian_filter1d(line, 1.0), rtol=1e-6)
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.skipif(not DATA_DIR.is_dir(), reason="../shared/data is absent")
def test_a_real_1mm_head_conforms_as_scipy_does():
    img = nib.load(DATA_DIR / "fs_training_t1/sub-02/T1.mgz")  # LIA, Fortran-ordered data
    volume = np.asanyarray(img.dataobj).astype(np.float32)
    shape, target = working_grid(volume.shape, img.affine, 3.0, 16)
    sigma = _antialias_sigma(img.affine, 3.0)
    expected = scipy_resample(volume, img.affine, shape, target, sigma)
    np.testing.assert_allclose(resample(volume, img.affine, shape, target, sigma=sigma), expected,
                               atol=1e-6 * float(volume.max()) * 10)
