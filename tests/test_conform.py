"""Conform → unconform on real images: any orientation, voxel size, oblique affine, thick slices, 4D."""

import nibabel as nib
import numpy as np
import pytest
from helpers_bids import DATA_DIR

from singlestrip_bids.io.conform import conform, conform_mask, native_volume, reference_volume, unconform, unconform_box
from singlestrip_bids.metrics import dice

pytestmark = pytest.mark.skipif(not DATA_DIR.is_dir(), reason="../shared/data is absent")

MASKED = [
    ("fs_training_t1/sub-02/T1.mgz", "fs_training_t1/sub-02/brainmask_bin.nii.gz"),  # LIA 1 mm
    ("mrtrix_scripttest_sub01/sub-01_T1w.nii.gz", "mrtrix_scripttest_sub01/sub-01_brainmask.nii.gz"),  # oblique
    ("ms_lesjak_longitudinal/patient01/study1_T2W.nii.gz",
     "ms_lesjak_longitudinal/patient01/study1_T2W_brainmask.nii.gz"),  # LPS, 4 mm slices
    ("rat_t2rare_u2net/T2TurboRARE.nii", "rat_t2rare_u2net/mask_T2TurboRARE_imgaffine.nii.gz"),  # 0.125 mm
]


@pytest.mark.parametrize("image, mask", MASKED)
def test_mask_round_trip_keeps_the_native_grid(image, mask):
    img, ref = nib.load(DATA_DIR / image), nib.load(DATA_DIR / mask)
    conformed = conform(ref, voxel_size=2.0, multiple=16)
    assert all(s % 16 == 0 for s in conformed.data.shape)
    assert np.allclose(np.diag(conformed.affine)[:3], 2.0)
    back = unconform(conformed.data, conformed.affine, ref.shape[:3], ref.affine)
    assert back.shape == img.shape[:3]
    truth = np.asarray(ref.dataobj) > 0
    overlap = dice(back >= 0.5, truth)
    # a 2 mm detour blurs the boundary; thin or small structures lose most
    assert overlap > (0.6 if "rat" in image else 0.9), overlap


def test_working_grid_is_ras_and_keeps_anatomy_in_place():
    ref = nib.load(DATA_DIR / "fs_training_t1/sub-02/brainmask_bin.nii.gz")  # LIA
    conformed = conform(ref, voxel_size=2.0)
    native = np.asarray(ref.dataobj, dtype=np.float32)

    def world_centroid(volume, affine):
        index = np.argwhere(volume > 0.5)
        return (affine @ np.c_[index, np.ones(len(index))].T)[:3].mean(axis=1)

    shift = world_centroid(native, ref.affine) - world_centroid(conformed.data, conformed.affine)
    assert np.linalg.norm(shift) < 0.5, shift  # mm
    assert np.all(np.diag(conformed.affine)[:3] > 0)  # RAS


def test_flipped_affine_gives_the_same_working_image():
    img = nib.load(DATA_DIR / "mrtrix_scripttest_sub01/sub-01_T1w.nii.gz")
    data = np.asanyarray(img.dataobj)
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = data.shape[0] - 1
    flipped = nib.Nifti1Image(data[::-1].copy(), img.affine @ flip)
    a, b = conform(img), conform(flipped)
    assert a.data.shape == b.data.shape and np.allclose(a.affine, b.affine)
    assert np.allclose(a.data, b.data, atol=1e-3 * float(np.abs(a.data).max()))


def test_4d_reference_volume_is_the_mean_and_non_finite_voxels_become_zero():
    img = nib.load(DATA_DIR / "niivue_nomask/pcasl.nii.gz")
    data = np.asanyarray(img.dataobj).astype(np.float32)
    data[0, 0, 0, :] = np.nan
    data[1, 1, 1, 0] = np.inf
    ref = reference_volume(nib.Nifti1Image(data, img.affine))
    assert ref.shape == data.shape[:3]
    assert np.isfinite(ref).all() and ref[0, 0, 0] == 0
    assert np.isclose(ref[5, 5, 5], data[5, 5, 5].mean(), rtol=1e-5)
    assert conform(img).data.ndim == 3


@pytest.mark.parametrize("image, mask", MASKED[:3])
def test_unconform_box_is_exact_above_the_floor_and_holds_every_such_voxel(image, mask):
    ref = nib.load(DATA_DIR / mask)
    conformed = conform(ref, voxel_size=3.0, multiple=16)
    args = (conformed.data, conformed.affine, ref.shape[:3], ref.affine)
    full = unconform(*args)
    box, values = unconform_box(*args, floor=0.5)
    boxed = np.zeros(full.shape, np.float32)
    boxed[box] = values
    assert np.array_equal(boxed >= 0.5, full >= 0.5)
    assert np.allclose(boxed[full >= 0.5], full[full >= 0.5])
    grown, _ = unconform_box(*args, floor=0.5, margin=(2, 3, 4))
    assert grown == tuple(slice(max(part.start - grow, 0), min(part.stop + grow, size))
                          for part, grow, size in zip(box, (2, 3, 4), ref.shape))
    if "fs_training" in image:  # a 256 mm field of view: the box leaves the low values around the head out
        assert np.prod([part.stop - part.start for part in box]) < full.size / 2


def test_unconform_box_of_a_volume_that_never_reaches_the_floor_is_none():
    ref = nib.load(DATA_DIR / MASKED[0][1])
    conformed = conform(ref, voxel_size=3.0, multiple=16)
    assert unconform_box(conformed.data * 0.1, conformed.affine, ref.shape[:3], ref.affine, floor=0.5) == (None, None)


@pytest.mark.parametrize("image, mask", MASKED)
@pytest.mark.parametrize("voxel_size", [3.0, 1.0])
def test_conform_mask_is_the_whole_grid_conform_cut_to_the_mask(image, mask, voxel_size):
    """Filtering and resampling only the box around the mask gives every voxel of the full conform."""
    ref = nib.load(DATA_DIR / mask)
    whole = conform(ref, voxel_size=voxel_size, multiple=16).data >= 0.5
    boxed = conform_mask(ref, voxel_size, 16)
    assert boxed.dtype == bool and boxed.shape == whole.shape
    assert np.array_equal(boxed, whole) and boxed.any()
    empty = nib.Nifti1Image(np.zeros(ref.shape[:3], np.uint8), ref.affine)
    assert conform_mask(empty, voxel_size, 16).shape == whole.shape and not conform_mask(empty, voxel_size, 16).any()


def test_native_volume_is_an_integer_images_own_array_and_a_float_images_clean_copy():
    loaded = nib.load(DATA_DIR / "fs_training_t1/sub-02/brainmask_bin.nii.gz")
    mask = nib.Nifti1Image(np.asanyarray(loaded.dataobj), loaded.affine)  # uint8, in memory
    assert np.shares_memory(native_volume(mask), mask.dataobj)  # no copy of 16 M voxels
    data = np.asanyarray(mask.dataobj).astype(np.float32)
    data[0, 0, 0] = np.nan
    volume = native_volume(nib.Nifti1Image(data, mask.affine))
    assert volume.dtype == np.float32 and volume[0, 0, 0] == 0 and np.isfinite(volume).all()
