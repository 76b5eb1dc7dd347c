"""training.sizing: the group level's sizes derived from the labeled brain (adult, mouse, fetus)."""

import nibabel as nib
import numpy as np
import pytest
from helpers_bids import DATA_DIR, data_available

from singlestrip_bids.training.sizing import apply_sizing, derive_sizing
from singlestrip_bids.training.sl1 import TrainingConfig

pytestmark = pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")
ADULT = "fs_training_t1/sub-01/brainmask_bin.nii.gz"
MOUSE = "mouse_epi_sidneyp/derivatives/manual/sub-01/ses-1/anat/sub-01_ses-1_desc-brain_mask.nii.gz"
FETAL = "fetal_t2w_mialsrtk/derivatives/manual_masks/sub-01/anat/sub-01_run-1_T2w_desc-brain_mask.nii.gz"


def test_adult_head_gets_the_shipped_models_sizes():
    """The sizes the shipped model was trained with, read from its own bundle."""
    from singlestrip_bids.model.bundle import default_bundle_path, read_bundle_config

    shipped = read_bundle_config(default_bundle_path())
    sizing = derive_sizing(nib.load(DATA_DIR / ADULT))
    config = apply_sizing(TrainingConfig(), sizing)
    assert config.voxel_size == shipped["working_voxel_size"] == 3.0
    assert config.head_margin_mm == shipped["head_margin_mm"] == 36.0
    assert list(config.synthesis.patch_sizes) == shipped["training"]["synthesis"]["patch_sizes"]
    assert config.synthesis.spatial.translation == shipped["training"]["synthesis"]["spatial"]["translation"]
    ae = shipped["qc_ae"]["config"]
    assert sizing.ae_architecture("2d") == {"size": ae["size"], "spacing_mm": ae["spacing_mm"]}
    assert sizing.ae_shift_mm == ae["augmentation"]["shift_mm"]
    assert sizing.ae_architecture("3d") == {"spacing_mm": 4.0}
    assert config.to_dict() == apply_sizing(config, sizing).to_dict()  # the defaults are these sizes


def test_mouse_with_ten_mm_slices_and_scaled_header():
    """80x80x17 voxels of 2.5x2.5x10 mm (x10 header): a 170 mm brain that fills the field of view."""
    sizing = derive_sizing(nib.load(DATA_DIR / MOUSE))
    assert (sizing.brain_extent_mm, sizing.field_of_view_mm) == (170.0, 200.0)
    assert sizing.voxel_size == 2.8  # 170 / 60, above the 2.5 mm in-plane spacing
    assert sizing.patch_sizes == (64, 80, 96)  # capped one size above the 72-voxel field of view
    assert (sizing.translation, sizing.head_margin_mm, sizing.ae_size) == (30.0, 33.6, 64)


def test_fetal_stack_in_a_large_field_of_view():
    """A 85 mm fetal brain in a 388 mm abdomen stack with 3.3 mm slices: the field of view, not the
    brain, sets the grid (at most 160 voxels across), and patches travel further than around a head."""
    sizing = derive_sizing(nib.load(DATA_DIR / FETAL))
    assert sizing.brain_extent_mm == pytest.approx(84.7, abs=0.01)
    assert sizing.field_of_view_mm == pytest.approx(388.13, abs=0.01)
    assert sizing.voxel_size == 2.4  # 388 / 160; the brain alone would ask for 1.4
    assert sizing.patch_sizes == (48, 64, 80, 96)  # from the 35-voxel brain up
    assert sizing.translation == 35.0  # the brain's extent: (162 − 48) / 2 would leave most patches brainless
    assert sizing.head_margin_mm == pytest.approx(16.8)
    assert sizing.ae_size == 48 and sizing.ae_shift_mm == pytest.approx(2.4 * 10 / 3, abs=1e-4)


def test_explicit_voxel_size_wins_and_the_rest_follows():
    sizing = derive_sizing(nib.load(DATA_DIR / ADULT), voxel_size=6.0)
    assert sizing.voxel_size == 6.0
    assert sizing.patch_sizes == (32, 48, 64)  # 182 mm = 30.3 voxels; the 256 mm view is 43 voxels
    assert (sizing.translation, sizing.head_margin_mm) == (15.0, 36.0)
    coarse = derive_sizing(nib.load(DATA_DIR / ADULT), voxel_size=12.0)  # brain 15 voxels across
    assert coarse.patch_sizes[0] == 32  # the 5-level U-Net's coarsest level keeps 2 voxels a side


def test_voxel_never_finer_than_the_image_and_empty_mask_refused():
    mask = np.zeros((40, 40, 40), np.uint8)
    mask[5:35, 5:35, 5:35] = 1  # 30 voxels of 4 mm = 120 mm: 2 mm wanted, 4 mm available
    sizing = derive_sizing(nib.Nifti1Image(mask, np.diag([4.0, 4.0, 4.0, 1.0])))
    assert sizing.voxel_size == 4.0
    with pytest.raises(ValueError, match="empty"):
        derive_sizing(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)))
