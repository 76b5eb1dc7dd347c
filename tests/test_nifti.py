"""io.nifti.load_image: real images load; every kind of unusable file is a one-line UserError."""

import gzip

import nibabel as nib
import numpy as np
import pytest
from helpers_bids import DATA_DIR, data_available
from helpers_errors import one_line_user_error

from singlestrip_bids.io.nifti import load_image, nifti_like, voxel_sizes_mm

pytestmark = pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")

MRTRIX_T1W = DATA_DIR / "mrtrix_scripttest_sub01" / "sub-01_T1w.nii.gz"


def _load_error(path) -> str:
    return one_line_user_error(load_image, path)


@pytest.mark.parametrize(
    ("relative", "shape"),
    [
        ("fs_training_t1/sub-01/T1.mgz", (256, 256, 256)),
        ("mrtrix_scripttest_sub01/sub-01_T1w.nii.gz", (96, 128, 128)),
        ("ms_lesjak_longitudinal/patient01/study1_T2W.nii.gz", (406, 448, 36)),
        ("niivue_nomask/pcasl.nii.gz", (52, 68, 20, 10)),
        ("rat_t2rare_u2net/T2TurboRARE.nii", (256, 256, 21)),
    ],
)
def test_real_images_load(relative, shape):
    img = load_image(DATA_DIR / relative)
    plain = nib.load(DATA_DIR / relative)
    assert img.shape == shape and img.get_data_dtype() == plain.get_data_dtype()
    assert np.array_equal(img.affine, plain.affine)
    assert isinstance(img.dataobj, np.ndarray)  # read once, kept in memory
    if isinstance(img, nib.Nifti1Image):
        for key in ("qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d", "srow_x", "srow_y", "srow_z"):
            assert np.array_equal(img.header[key], plain.header[key])


def test_missing_file(tmp_path):
    assert "no such file" in _load_error(tmp_path / "sub-01_T1w.nii.gz")


def test_empty_file(tmp_path):
    path = tmp_path / "sub-01_T1w.nii.gz"
    path.write_bytes(b"")
    assert "empty" in _load_error(path)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    assert "not a NIfTI or MGZ" in _load_error(path)


def test_garbage_with_nifti_extension(tmp_path):
    path = tmp_path / "sub-01_T1w.nii.gz"
    path.write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    message = _load_error(path)
    assert "not a NIfTI or MGZ" in message or "cannot read the header" in message


def test_truncated_compressed(tmp_path):
    path = tmp_path / "sub-01_T1w.nii.gz"
    data = MRTRIX_T1W.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in _load_error(path)


def test_truncated_uncompressed(tmp_path):
    path = tmp_path / "sub-01_T1w.nii"
    data = gzip.decompress(MRTRIX_T1W.read_bytes())
    path.write_bytes(data[: len(data) - 1000])
    assert "truncated or corrupt" in _load_error(path)


@pytest.mark.parametrize("shape", [(64, 64), (64, 64, 1), (64, 1, 64), (64, 64, 1, 5)])
def test_2d_images_refused(tmp_path, shape):
    path = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), np.eye(4)), path)
    assert "2D images are not supported" in _load_error(path)


def test_5d_image_refused(tmp_path):
    path = tmp_path / "five.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8, 2, 2), np.float32), np.eye(4)), path)
    assert "only 3D or 4D" in _load_error(path)


def test_zero_voxel_size_refused(tmp_path):
    path = tmp_path / "flat_affine.nii.gz"
    img = nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4))
    img.set_qform(None, code=0)
    img.set_sform(np.diag([1.0, 1.0, 0.0, 1.0]), code=1)
    nib.save(img, path)
    assert "invalid voxel-to-world affine" in _load_error(path)


def test_nonfinite_voxels_accepted(tmp_path):
    real = nib.load(MRTRIX_T1W)
    data = real.get_fdata(dtype=np.float32)
    data[0, 0, :3] = [np.nan, np.inf, -np.inf]
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, real.affine, real.header), path)
    img = load_image(path)
    assert np.count_nonzero(~np.isfinite(np.asanyarray(img.dataobj))) == 3


def test_broken_link(tmp_path):
    link = tmp_path / "sub-01_T1w.nii.gz"
    link.symlink_to(tmp_path / ".git" / "annex" / "objects" / "missing")
    assert "broken link" in _load_error(link)


def test_voxel_sizes_of_oblique_affine():
    img = nib.load(MRTRIX_T1W)
    assert np.allclose(voxel_sizes_mm(img.affine), img.header.get_zooms()[:3], atol=1e-5)
    rotation = np.array([[0.0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    assert np.allclose(voxel_sizes_mm(rotation @ np.diag([1.0, 2.0, 3.0, 1.0])), [1, 2, 3])


def test_nifti_like_keeps_geometry_of_a_4d_nifti(tmp_path):
    source = nib.load(DATA_DIR / "niivue_nomask" / "pcasl.nii.gz")
    out = nifti_like(source, np.ones(source.shape[:3], np.uint8), np.uint8)
    out.to_filename(tmp_path / "mask.nii.gz")
    loaded = nib.load(tmp_path / "mask.nii.gz")
    assert loaded.shape == source.shape[:3] and loaded.get_data_dtype() == np.uint8
    assert np.array_equal(loaded.affine, source.affine)
    assert np.array_equal(loaded.header.get_qform(coded=True)[0], source.header.get_qform(coded=True)[0])
    assert loaded.header.get_sform(coded=True)[1] == source.header.get_sform(coded=True)[1]
