"""inference.strip: the three per-image steps in memory, with the input's header kept exactly."""

import json

import nibabel as nib
import numpy as np
import pytest
from helpers_bids import DATA_DIR, data_available

from singlestrip_bids.errors import UserError
from singlestrip_bids.inference.predict import get_predictor
from singlestrip_bids.inference.strip import conform_step, postprocess_step, predict_step, strip_file, strip_image
from singlestrip_bids.io.nifti import load_image
from singlestrip_bids.metrics import dice
from singlestrip_bids.model.bundle import default_bundle_path, load_bundle

pytestmark = pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")

SHIPPED = (default_bundle_path() / "bundle.json").is_file()


@pytest.fixture(scope="module")
def bundle_path(tiny_bundle):
    """conftest's tiny untrained model: fast, and headers and geometry do not depend on weights."""
    import torch

    torch.set_num_threads(1)
    return tiny_bundle


def _strip(in_file, folder, bundle_path, border_mm=0.0):
    mask, brain = folder / "sub-01_desc-brain_mask.nii.gz", folder / "sub-01_desc-brain_T1w.nii.gz"
    stats = strip_file(in_file, mask, brain, bundle_path=bundle_path, device="cpu", border_mm=border_mm)
    return nib.load(mask), nib.load(brain), stats


@pytest.mark.parametrize(
    "relative",
    [
        "mrtrix_scripttest_sub01/sub-01_T1w.nii.gz",  # oblique affine, float32
        "ms_lesjak_longitudinal/patient01/study1_T1W.nii.gz",  # LPS, 3 mm slices, qform 2 / sform 1
        "niivue_nomask/pcasl.nii.gz",  # 4D int16
        "colin27_ch2/ch2.nii.gz",  # sform only (qform code 0)
    ],
)
def test_nifti_header_round_trip(tmp_path, bundle_path, relative):
    source = nib.load(DATA_DIR / relative)
    mask, brain, stats = _strip(DATA_DIR / relative, tmp_path, bundle_path)
    assert mask.shape == source.shape[:3] and mask.get_data_dtype() == np.uint8
    assert np.array_equal(mask.affine, source.affine)
    for out in (mask, brain):
        assert out.header.get_qform(coded=True)[1] == source.header.get_qform(coded=True)[1]
        assert out.header.get_sform(coded=True)[1] == source.header.get_sform(coded=True)[1]
        assert np.array_equal(out.header.get_qform(), source.header.get_qform())
        assert np.array_equal(out.header.get_sform(), source.header.get_sform())
    values = np.asanyarray(mask.dataobj)
    assert set(np.unique(values)) <= {0, 1}
    assert brain.shape == source.shape and brain.get_data_dtype() == source.get_data_dtype()
    data = np.asanyarray(source.dataobj)
    expected = np.where((values if data.ndim == 3 else values[..., None]) == 1, data, 0)
    assert np.array_equal(np.asanyarray(brain.dataobj), expected)
    voxel_ml = abs(np.linalg.det(source.affine[:3, :3])) / 1000
    assert stats["brain_volume_ml"] == pytest.approx(values.sum() * voxel_ml)
    assert stats["device"] == "cpu" and stats["seconds"] > 0 and stats["nonfinite_voxels"] == 0


def test_mgz_input_gets_a_nifti_with_its_affine(tmp_path, bundle_path):
    source = nib.load(DATA_DIR / "fs_training_t1" / "sub-01" / "T1.mgz")
    mask, brain, _ = _strip(DATA_DIR / "fs_training_t1" / "sub-01" / "T1.mgz", tmp_path, bundle_path)
    assert nib.aff2axcodes(mask.affine) == ("L", "I", "A")
    for out in (mask, brain):
        assert isinstance(out, nib.Nifti1Image) and out.shape == (256, 256, 256)
        assert np.allclose(out.affine, source.affine, atol=1e-4)
        assert int(out.header["qform_code"]) == int(out.header["sform_code"]) == 1
    assert brain.get_data_dtype() == np.uint8


def test_steps_and_their_statistics(tmp_path, bundle_path):
    real = nib.load(DATA_DIR / "mrtrix_scripttest_sub01" / "sub-01_T1w.nii.gz")
    data = real.get_fdata(dtype=np.float32)
    data[0, 0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    img = nib.Nifti1Image(data, real.affine, real.header)
    bundle = load_bundle(bundle_path)

    working, conformed = conform_step(img, voxel_size=bundle.voxel_size, multiple=bundle.size_multiple)
    assert conformed["nonfinite_voxels"] == 4 and conformed["seconds"] > 0
    assert np.isfinite(working.data).all() and working.data.dtype == np.float32
    assert all(size % bundle.size_multiple == 0 for size in working.data.shape)
    assert np.allclose(np.sqrt((working.affine[:3, :3] ** 2).sum(axis=0)), bundle.voxel_size)

    prob, predicted = predict_step(working, get_predictor(bundle_path, "cpu"))
    assert predicted["model_id"] == bundle.model_id and predicted["device"] == "cpu"
    assert prob.shape == working.data.shape and 0 <= prob.min() and prob.max() <= 1

    # A known probability map: a ball of 50 mm radius, off the grid's centre by (12, -8, 6) mm (RAS).
    offset_mm = np.array([12.0, -8.0, 6.0])
    shape = working.data.shape
    centre = (np.array(shape) - 1) / 2 + offset_mm / bundle.voxel_size
    grid = np.indices(shape).astype(float)
    radius_mm = np.sqrt(sum((grid[a] - centre[a]) ** 2 for a in range(3))) * bundle.voxel_size
    ramp = np.clip(0.5 + (50 - radius_mm) / (4 * bundle.voxel_size), 0, 1).astype(np.float32)  # 0.5 at 50 mm
    volumes = []
    for border in (0.0, 4.0):
        mask, brain, stats = postprocess_step(img, ramp, working.affine, border_mm=border)
        assert json.dumps(stats)  # plain JSON-able numbers for the QC JSON
        assert stats["n_components_removed"] == 0 and mask.dtype == np.uint8 and mask.shape == img.shape
        volumes.append(stats["brain_volume_ml"])
        assert np.all(brain[mask == 0] == 0)
        if border == 0.0:
            centroid_world = real.affine @ np.append(np.argwhere(mask).mean(axis=0), 1)
    expected_world = working.affine @ np.append(centre, 1)
    assert np.allclose(centroid_world[:3], expected_world[:3], atol=0.5)  # no flip or shift on the way back
    radius = [(3 * volume * 1000 / (4 * np.pi)) ** (1 / 3) for volume in volumes]  # mm
    assert radius[0] == pytest.approx(50, abs=0.3)
    assert 4 - 1.875 < radius[1] - radius[0] <= 4  # grown by the border, less up to a voxel


def test_nonfinite_voxels_inside_the_mask_are_zero_in_the_brain_image():
    real = nib.load(DATA_DIR / "mrtrix_scripttest_sub01" / "sub-01_T1w.nii.gz")
    data = real.get_fdata(dtype=np.float32)
    centre = tuple(s // 2 for s in data.shape[:3])
    data[centre[0], centre[1], centre[2]:centre[2] + 3] = [np.nan, np.inf, -np.inf]
    img = nib.Nifti1Image(data, real.affine, real.header)
    working, _ = conform_step(img, voxel_size=4.0, multiple=8)
    mask, brain, _ = postprocess_step(img, np.ones(working.data.shape, np.float32), working.affine)
    assert mask[centre] == 1
    assert np.isfinite(brain).all() and (brain[centre[0], centre[1], centre[2]:centre[2] + 3] == 0).all()
    inside = np.isfinite(data)
    np.testing.assert_allclose(brain[inside], data[inside], rtol=1e-5)


@pytest.mark.parametrize("border_mm", [0.0, 8.0, -2.0])
def test_postprocess_in_the_box_equals_the_whole_grid(border_mm):
    """Post-processing only the box where P(brain) can reach the threshold gives the whole array's mask;
    mask and brain come out Fortran-ordered, as NIfTI stores them."""
    from singlestrip_bids.inference.postprocess import postprocess_probability
    from singlestrip_bids.io.conform import unconform

    img = load_image(DATA_DIR / "fs_training_t1/sub-02/T1.mgz")  # 256 mm field of view around the head
    working, _ = conform_step(img, voxel_size=3.0, multiple=16)
    reference = nib.load(DATA_DIR / "fs_training_t1/sub-02/brainmask_bin.nii.gz")
    prob = conform_step(reference, voxel_size=3.0, multiple=16)[0].data  # a smooth P(brain)
    prob[10:14, 10:14, 10:14] = 1.0  # an island the largest component drops
    mask, brain, stats = postprocess_step(img, prob, working.affine, border_mm=border_mm, threshold=0.5)
    full = unconform(prob, working.affine, img.shape, img.affine)
    expected, removed = postprocess_probability(full, (1.0, 1.0, 1.0), threshold=0.5, border_mm=border_mm)
    assert np.array_equal(mask, expected) and stats["n_components_removed"] == removed == 1
    data = np.asanyarray(img.dataobj)
    assert np.array_equal(brain, np.where(expected.astype(bool), data, 0)) and brain.dtype == data.dtype
    assert mask.flags.f_contiguous and brain.flags.f_contiguous


def test_bad_input_is_a_user_error_and_writes_nothing(tmp_path, bundle_path):
    empty = tmp_path / "sub-01_T1w.nii.gz"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        strip_file(empty, tmp_path / "mask.nii.gz", tmp_path / "brain.nii.gz", bundle_path=bundle_path, device="cpu")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sub-01_T1w.nii.gz"]


def test_strip_image_keeps_what_qc_and_the_figure_need(bundle_path):
    source = DATA_DIR / "mrtrix_scripttest_sub01" / "sub-01_T1w.nii.gz"
    stripped = strip_image(source, bundle_path=bundle_path, device="cpu")
    assert set(stripped.stats) == {"conform", "predict", "postprocess"}
    assert np.array_equal(stripped.image.affine, load_image(source).affine)
    assert stripped.mask_image().shape == stripped.image.shape[:3]
    assert np.array_equal(stripped.mask_image().affine, stripped.image.affine)
    assert stripped.conformed.data.shape[0] % load_bundle(bundle_path).size_multiple == 0


@pytest.mark.skipif(not SHIPPED, reason="no model shipped in singlestrip_bids/data/default_model yet")
def test_shipped_model_strips_a_real_head(tmp_path):
    """The shipped model through the three steps: one component that covers the reference brain."""
    folder = DATA_DIR / "mrtrix_scripttest_sub01"
    mask, _, stats = _strip(folder / "sub-01_T1w.nii.gz", tmp_path, default_bundle_path())
    assert stats["model_id"] == load_bundle(default_bundle_path()).model_id
    predicted = np.asanyarray(mask.dataobj).astype(bool)
    reference = np.asanyarray(nib.load(folder / "sub-01_brainmask.nii.gz").dataobj).astype(bool)
    print(f"shipped model, mrtrix sub-01: Dice {dice(predicted, reference):.3f}, "
          f"{stats['brain_volume_ml']:.0f} mL, {stats['seconds']:.1f} s")
    assert (predicted & reference).sum() > 0.9 * reference.sum()


def test_a_small_field_of_view_still_runs_through_the_shipped_model(tmp_path):
    """The rat head is a few working voxels wide: the coarsest U-Net level must keep more than one."""
    image = DATA_DIR / "rat_t2rare_u2net" / "T2TurboRARE.nii"
    if not image.is_file():
        pytest.skip("../shared/data/rat_t2rare_u2net is absent")
    mask, _, stats = _strip(image, tmp_path, default_bundle_path())
    assert mask.shape == nib.load(image).shape[:3]
    assert set(np.unique(np.asanyarray(mask.dataobj))) <= {0, 1} and np.isfinite(stats["brain_volume_ml"])


# sha256 (first 16 hex) of the shipped model's uint8 masks in fp32, as computed by the code before the
# issue-20 redesign (commit e34934f) and after it: the redesign changed no voxel.
SHIPPED_MASK_DIGESTS = {
    "mrtrix_scripttest_sub01/sub-01_T1w.nii.gz": "688bd4c037f07722",
    "ms_lesjak_longitudinal/patient01/study1_T1W.nii.gz": "5eaad72101ff99e2",
    "icbm152_2009c_2mm/2mm_T1.nii.gz": "7be45136e1d7ebf4",
}


@pytest.mark.parametrize("relative", sorted(SHIPPED_MASK_DIGESTS))
def test_shipped_model_masks_are_unchanged_in_fp32(relative, tmp_path):
    import hashlib

    import torch

    if not (DATA_DIR / relative).is_file():
        pytest.skip(f"../shared/data/{relative} is absent")
    torch.set_num_threads(1)
    strip_file(DATA_DIR / relative, tmp_path / "mask.nii.gz", tmp_path / "brain.nii.gz",
               bundle_path=default_bundle_path(), device="cpu", precision="fp32")
    mask = np.ascontiguousarray(np.asanyarray(nib.load(tmp_path / "mask.nii.gz").dataobj))
    assert mask.dtype == np.uint8
    assert hashlib.sha256(mask.tobytes()).hexdigest()[:16] == SHIPPED_MASK_DIGESTS[relative]
