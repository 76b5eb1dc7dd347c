"""The real CLI on bad input: one-line error, non-zero exit, nothing written, input untouched."""

import os
import shutil

import nibabel as nib
import numpy as np
import pytest
from conftest import run_cli, tree_digest
from helpers_bids import DATA_DIR, data_available
from helpers_errors import assert_refused

pytestmark = pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")

T1W = "sub-mrtrix/anat/sub-mrtrix_T1w.nii.gz"
SKIP = "--skip-bids-validation"


def copy_with(dataset, tmp_path, write_t1w):
    """A copy of ``dataset`` whose T1w file is replaced by ``write_t1w(path)``."""
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    write_t1w(copy / T1W)
    return copy


def _empty(path):
    path.write_bytes(b"")


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _not_gzip(path):
    path.write_bytes(b"this is not an image" * 100)


def _two_d(path):
    nib.save(nib.Nifti1Image(np.ones((64, 64, 1), np.float32), np.eye(4)), path)


def _constant(path):
    nib.save(nib.Nifti1Image(np.full((64, 64, 64), 7.0, np.float32), np.eye(4)), path)


def _tiny_voxels(path):
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), np.diag([0.001, 0.001, 0.001, 1.0])), path)


def _five_d(path):
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8, 2, 2), np.float32), np.eye(4)), path)


@pytest.mark.parametrize(
    ("case", "writer", "extra", "fragment"),
    [
        ("no matching images", None, ["--suffix", "FLAIR"], "no NIfTI images"),
        ("unknown participant", None, ["--participant-label", "99"], "not found: 99"),
        ("label with path characters", None, ["--participant-label", "../x"], "invalid sub- label"),
        ("session with path characters", None, ["--session-label", "ses-a/b"], "invalid ses- label"),
        ("empty NIfTI", _empty, [], "empty file"),
        ("truncated NIfTI", _truncated, [], "truncated or corrupt"),
        ("not a NIfTI", _not_gzip, [], "not a NIfTI"),
        ("2D image", _two_d, [], "not a 3D volume"),
        ("5D image", _five_d, [], "5D image"),
        ("constant image", _constant, [], "no anatomy to strip (every voxel is 7)"),
        ("0.001 mm voxels", _tiny_voxels, [], "voxel size 0.001 x 0.001 x 0.001 mm is outside"),
        ("not a model bundle", None, ["--model", "."], "not a model bundle"),
        ("unknown plugin", None, ["--plugin", "NoSuchPlugin"], "unknown Nipype plugin"),
    ],
)
def test_bad_input_is_refused(case, writer, extra, fragment, dataset, tmp_path):
    bids_dir = copy_with(dataset, tmp_path, writer) if writer else dataset
    before = tree_digest(bids_dir)
    out = tmp_path / "out"
    completed = run_cli(bids_dir, out, "participant", SKIP, "-w", tmp_path / "work", *extra, cwd=tmp_path)
    assert_refused(completed, fragment)
    assert not out.exists(), f"{case}: output written"
    assert tree_digest(bids_dir) == before


def test_not_a_bids_dataset(tmp_path):
    """Refused by the validator, and by the image selection when the validator is skipped."""
    folder = tmp_path / "not_bids"
    (folder / "sub-01" / "anat").mkdir(parents=True)
    out = tmp_path / "out"
    assert_refused(run_cli(folder, out, "participant", cwd=tmp_path), "BIDS validation failed")
    assert_refused(run_cli(folder, out, "participant", SKIP, cwd=tmp_path), "not a BIDS dataset")
    assert_refused(run_cli(tmp_path / "missing", out, "participant", SKIP, cwd=tmp_path), "not a directory")
    assert not out.exists()


def test_validator_refuses_a_corrupt_image(dataset, tmp_path):
    bids_dir = copy_with(dataset, tmp_path, _empty)
    out = tmp_path / "out"
    assert_refused(run_cli(bids_dir, out, "participant", cwd=tmp_path), "BIDS validation failed")
    assert not out.exists()


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        (lambda bids, tmp: (bids, tmp / "work"), "input BIDS dataset"),
        (lambda bids, tmp: (bids / "derivatives" / "strip", tmp / "work"), "input BIDS dataset"),
        (lambda bids, tmp: (tmp / "out", bids / "work"), "work folder"),
    ],
    ids=["output is input", "output inside input", "work dir inside input"],
)
def test_output_and_work_dir_outside_the_input(where, fragment, dataset, tmp_path):
    before = tree_digest(dataset)
    out, work = where(dataset, tmp_path)
    assert_refused(run_cli(dataset, out, "participant", SKIP, "-w", work, cwd=tmp_path), fragment)
    assert tree_digest(dataset) == before
    assert not (tmp_path / "out").exists()


def test_unwritable_output(dataset, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    completed = run_cli(dataset, blocker / "out", "participant", SKIP, "-w", tmp_path / "w", cwd=tmp_path)
    assert_refused(completed, "is not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_output(dataset, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        completed = run_cli(dataset, locked / "out", "participant", SKIP, "-w", tmp_path / "w", cwd=tmp_path)
        assert_refused(completed, "not writable")
    finally:
        locked.chmod(0o700)


def test_cuda_requested_without_gpu(dataset, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    completed = run_cli(dataset, tmp_path / "out", "participant", SKIP, "--device", "cuda", cwd=tmp_path)
    assert_refused(completed, "no CUDA GPU")
    assert not (tmp_path / "out").exists()


def test_option_of_the_other_level(dataset, tmp_path):
    completed = run_cli(dataset, tmp_path / "out", "group", SKIP, "--qc-masks", tmp_path, cwd=tmp_path)
    assert_refused(completed, "participant-level option")


def test_usage_errors_keep_argparse_exit_code(dataset, tmp_path):
    completed = run_cli(dataset, tmp_path / "out", "participant", "--no-such-flag", cwd=tmp_path)
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert "unrecognized arguments: --no-such-flag" in completed.stderr
    assert not (tmp_path / "out").exists()


def test_nonfinite_voxels_are_masked_out_and_counted(dataset, tmp_path, tiny_bundle):
    """NaN/Inf voxels are not an error: they count in the QC JSON and never reach the outputs."""

    def with_nonfinite(path):
        img = nib.load(path)
        data = np.asanyarray(img.dataobj).astype(np.float32)
        data[:5, :5, :4] = np.nan  # 100 voxels
        data[-5:, -5:, :2] = np.inf  # 50 voxels
        nib.save(nib.Nifti1Image(data, img.affine, img.header), path)

    bids_dir = copy_with(dataset, tmp_path, with_nonfinite)
    out = tmp_path / "out"
    completed = run_cli(bids_dir, out, "participant", SKIP, "--model", tiny_bundle, "--nprocs", "1",
                        "-w", tmp_path / "work", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    qc = (out / "sub-mrtrix" / "anat" / "sub-mrtrix_desc-brain_qc.json").read_text()
    assert '"nonfinite_voxels": 150' in qc
    brain = nib.load(out / "sub-mrtrix" / "anat" / "sub-mrtrix_desc-brain_T1w.nii.gz").get_fdata()
    assert np.isfinite(brain).all()


def test_a_second_run_on_the_same_work_dir_is_refused(dataset, tmp_path, tiny_bundle):
    from singlestrip_bids.io.lock import hold_work_dir

    work = tmp_path / "work"
    with hold_work_dir(work):  # another run holds it
        completed = run_cli(dataset, tmp_path / "out", "participant", SKIP, "--model", tiny_bundle, "-w", work,
                            cwd=tmp_path)
        assert_refused(completed, f"work dir {work} is in use by another run (pid {os.getpid()})")
        assert not (tmp_path / "out").exists()
        group = run_cli(dataset, tmp_path / "out", "group", SKIP, "--labeled-subject", "mrtrix", "-w", work,
                        cwd=tmp_path)
        assert group.returncode == 1 and "is in use by another run" in group.stderr
    # released: the same work dir serves the next run
    completed = run_cli(dataset, tmp_path / "out", "participant", SKIP, "--model", tiny_bundle, "-w", work,
                        "--nprocs", "1", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-2000:]
    import json

    (config_file,) = (tmp_path / "out" / "logs").glob("participant-*_config.json")
    config = json.loads(config_file.read_text())
    assert config["level"] == "participant" and config["settings"]["work_dir"] == str(work)
    assert config["settings"]["model"] == str(tiny_bundle) and config["settings"]["nprocs"] == 1
