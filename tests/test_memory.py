"""inference.memory: what a prediction will need, judged from the header, and refusing what cannot fit."""

import nibabel as nib
import numpy as np
import pytest
from helpers_errors import one_line_user_error

from singlestrip_bids.inference.memory import (
    BYTES_PER_VOXEL_FEATURE,
    NATIVE_COPIES,
    check_prediction_memory,
    prediction_memory_gb,
)
from singlestrip_bids.model.bundle import default_bundle_path, read_bundle_config

SHIPPED = read_bundle_config(default_bundle_path())  # 3 mm grid, 16 features, sizes multiples of 16


def _header_only(tmp_path, shape, voxel_mm):
    """A NIfTI file of ``shape`` at ``voxel_mm`` whose data is never read by the check (uint8 zeros)."""
    path = tmp_path / "sub-01_T1w.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(shape, np.uint8), np.diag([voxel_mm] * 3 + [1.0])), path)
    return path


def test_estimate_follows_the_working_grid(tmp_path):
    img = nib.load(_header_only(tmp_path, (96, 96, 96), 2.0))  # 192 mm → 64 voxels of 3 mm
    need, shape = prediction_memory_gb(img, SHIPPED)
    assert shape == (64, 64, 64)
    assert need == pytest.approx((64**3 * 16 * BYTES_PER_VOXEL_FEATURE + 96**3 * 4 * NATIVE_COPIES) / 1e9)


def test_an_absurd_field_of_view_is_refused(tmp_path):
    """29 mm voxels pass the voxel-size check, but 256 of them make a 7.4 m field of view."""
    path = _header_only(tmp_path, (256, 256, 32), 29.0)
    message = one_line_user_error(check_prediction_memory, [path], SHIPPED, None)
    assert "stripping it needs about" in message and "this machine's memory" in message
    check_prediction_memory([_header_only(tmp_path, (96, 96, 96), 2.0)], SHIPPED, 4.0)
    message = one_line_user_error(check_prediction_memory, [path.with_name("sub-01_T1w.nii.gz")], SHIPPED, 0.1)
    assert "more than the 0.1 GB available (--mem-gb)" in message
