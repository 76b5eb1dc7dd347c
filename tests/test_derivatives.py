"""io.derivatives: names from BIDS entities, sidecars, dataset_description, folder checks."""

import json
import os

import nibabel as nib
import numpy as np
import pytest
from helpers_bids import DATA_DIR, data_available, make_bids_dataset

import singlestrip_bids.io.derivatives as derivatives
from singlestrip_bids import __version__
from singlestrip_bids.errors import UserError
from singlestrip_bids.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_nifti
from singlestrip_bids.io.derivatives import (
    check_output_dir,
    image_outputs,
    split_bids_name,
    write_dataset_description,
)
from singlestrip_bids.io.nifti import nifti_like
from singlestrip_bids.io.validator import validate_bids

needs_data = pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")


def _names(source: str, tmp_path):
    outputs = image_outputs(tmp_path / "raw" / source, tmp_path / "raw", tmp_path / "out")
    return {key: getattr(outputs, key).relative_to(tmp_path / "out").as_posix()
            for key in ("mask", "brain", "qc_json", "figure", "mask_json", "brain_json")}


def test_split_bids_name():
    assert split_bids_name("sub-01_ses-a_acq-mp_run-2_T1w.nii.gz") == (
        {"sub": "01", "ses": "a", "acq": "mp", "run": "2"}, "T1w", ".nii.gz")


def test_t1w_names_have_no_space(tmp_path):
    names = _names("sub-01/ses-1/anat/sub-01_ses-1_acq-mp_rec-norm_run-2_T1w.nii.gz", tmp_path)
    assert names == {
        "mask": "sub-01/ses-1/anat/sub-01_ses-1_acq-mp_rec-norm_run-2_desc-brain_mask.nii.gz",
        "mask_json": "sub-01/ses-1/anat/sub-01_ses-1_acq-mp_rec-norm_run-2_desc-brain_mask.json",
        "brain": "sub-01/ses-1/anat/sub-01_ses-1_acq-mp_rec-norm_run-2_desc-brain_T1w.nii.gz",
        "brain_json": "sub-01/ses-1/anat/sub-01_ses-1_acq-mp_rec-norm_run-2_desc-brain_T1w.json",
        "qc_json": "sub-01/ses-1/anat/sub-01_ses-1_acq-mp_rec-norm_run-2_desc-brain_qc.json",
        "figure": "sub-01/figures/sub-01_ses-1_acq-mp_rec-norm_run-2_desc-brain_mask.png",
    }


@pytest.mark.parametrize(
    ("source", "mask", "brain"),
    [
        ("sub-01/anat/sub-01_T2w.nii.gz", "sub-01/anat/sub-01_space-T2w_desc-brain_mask.nii.gz",
         "sub-01/anat/sub-01_desc-brain_T2w.nii.gz"),
        ("sub-01/func/sub-01_task-rest_run-1_bold.nii.gz",
         "sub-01/func/sub-01_task-rest_run-1_space-bold_desc-brain_mask.nii.gz",
         "sub-01/func/sub-01_task-rest_run-1_desc-brain_bold.nii.gz"),
        ("sub-01/dwi/sub-01_dir-AP_dwi.nii", "sub-01/dwi/sub-01_dir-AP_space-dwi_desc-brain_mask.nii.gz",
         "sub-01/dwi/sub-01_dir-AP_desc-brain_dwi.nii.gz"),
        ("sub-01/perf/sub-01_asl.nii.gz", "sub-01/perf/sub-01_space-asl_desc-brain_mask.nii.gz",
         "sub-01/perf/sub-01_desc-brain_asl.nii.gz"),
    ],
)
def test_other_suffixes_use_space_and_keep_datatype(tmp_path, source, mask, brain):
    names = _names(source, tmp_path)
    assert (names["mask"], names["brain"]) == (mask, brain)


def test_sidecars(tmp_path):
    outputs = image_outputs(tmp_path / "raw/sub-01/anat/sub-01_T2w.nii.gz", tmp_path / "raw", tmp_path / "out")
    mask = outputs.mask_metadata()
    assert mask["Type"] == "Brain"
    assert mask["Sources"] == ["bids:raw:sub-01/anat/sub-01_T2w.nii.gz"]
    assert mask["SpatialReference"] == "bids:raw:sub-01/anat/sub-01_T2w.nii.gz"
    brain = outputs.brain_metadata()
    assert brain["SkullStripped"] is True
    assert brain["Sources"] == ["bids:raw:sub-01/anat/sub-01_T2w.nii.gz",
                                "bids::sub-01/anat/sub-01_space-T2w_desc-brain_mask.nii.gz"]


def test_annexed_file_links_stay_in_the_dataset(tmp_path):
    """DataLad/git-annex files are links into .git/annex: names come from the link, not its target."""
    raw = tmp_path / "raw"
    (raw / "sub-01" / "anat").mkdir(parents=True)
    (raw / ".git" / "annex").mkdir(parents=True)
    (raw / ".git" / "annex" / "MD5E-s1--x.nii.gz").write_bytes(b"x")
    link = raw / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    link.symlink_to(raw / ".git" / "annex" / "MD5E-s1--x.nii.gz")
    (tmp_path / "alias").symlink_to(raw)
    outputs = image_outputs(tmp_path / "alias" / "sub-01" / "anat" / "sub-01_T1w.nii.gz", raw, tmp_path / "out")
    assert outputs.source_uri == "bids:raw:sub-01/anat/sub-01_T1w.nii.gz"


def test_source_outside_dataset_refused(tmp_path):
    with pytest.raises(UserError, match="not inside the BIDS dataset"):
        image_outputs(tmp_path / "elsewhere/sub-01_T1w.nii.gz", tmp_path / "raw", tmp_path / "out")


def _raw(tmp_path, **extra):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "dataset_description.json").write_text(json.dumps({"Name": "Study", "BIDSVersion": "1.10.0", **extra}))
    return raw


def test_dataset_description(tmp_path, monkeypatch):
    monkeypatch.setattr(derivatives, "DOCKERENV", tmp_path / "absent")
    for variable in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"):
        monkeypatch.delenv(variable, raising=False)
    raw = _raw(tmp_path, DatasetDOI="doi:10.1/x")
    path = write_dataset_description(tmp_path / "out", raw)
    description = json.loads(path.read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"] == [{"Name": "singlestrip_bids", "Version": __version__}]
    assert description["DatasetLinks"] == {"raw": raw.absolute().as_uri()}
    assert description["SourceDatasets"] == [{"URL": raw.absolute().as_uri(), "DOI": "doi:10.1/x"}]
    assert "*_qc.json" in (tmp_path / "out" / ".bidsignore").read_text().splitlines()


@pytest.mark.parametrize(("variable", "kind"), [("APPTAINER_CONTAINER", "apptainer"),
                                                 ("SINGULARITY_CONTAINER", "singularity"), (None, "docker")])
def test_container_recorded(tmp_path, monkeypatch, variable, kind):
    dockerenv = tmp_path / ".dockerenv"
    dockerenv.touch()
    monkeypatch.setattr(derivatives, "DOCKERENV", dockerenv)
    for name in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"):
        monkeypatch.delenv(name, raising=False)
    if variable:
        monkeypatch.setenv(variable, "/images/singlestrip.sif")
    path = write_dataset_description(tmp_path / "out", _raw(tmp_path))
    container = json.loads(path.read_text())["GeneratedBy"][0]["Container"]
    assert container == {"Type": kind, "Tag": f"singlestrip_bids:{__version__}"}


def test_dataset_description_merges_own_file(tmp_path):
    raw = _raw(tmp_path)
    out = tmp_path / "out"
    write_dataset_description(out, raw)
    description = json.loads((out / "dataset_description.json").read_text())
    (out / "dataset_description.json").write_text(json.dumps({**description, "HowToAcknowledge": "cite"}))
    (out / ".bidsignore").write_text("extra/\n")
    write_dataset_description(out, raw)
    merged = json.loads((out / "dataset_description.json").read_text())
    assert merged["HowToAcknowledge"] == "cite"
    assert merged["GeneratedBy"][0]["Name"] == "singlestrip_bids"
    ignore = (out / ".bidsignore").read_text().splitlines()
    assert ignore[0] == "extra/" and len(ignore) == len(set(ignore)) == 1 + len(derivatives.BIDS_IGNORE)


@pytest.mark.parametrize(
    ("existing", "message"),
    [
        ({"Name": "x", "BIDSVersion": "1.10.0", "DatasetType": "derivative", "GeneratedBy": [{"Name": "fMRIPrep"}]},
         "another pipeline"),
        ({"Name": "x", "BIDSVersion": "1.10.0", "DatasetType": "raw"}, "raw BIDS dataset"),
        ({"Name": "x", "BIDSVersion": "1.10.0"}, "raw BIDS dataset"),
    ],
)
def test_foreign_output_refused_and_untouched(tmp_path, existing, message):
    out = tmp_path / "out"
    out.mkdir()
    text = json.dumps(existing)
    (out / "dataset_description.json").write_text(text)
    with pytest.raises(UserError, match=message):
        write_dataset_description(out, _raw(tmp_path))
    assert (out / "dataset_description.json").read_text() == text
    assert not (out / ".bidsignore").exists()


def test_check_output_dir_accepts_sibling_folders(tmp_path):
    raw = _raw(tmp_path)
    check_output_dir(raw, tmp_path / "derivatives" / "singlestrip", tmp_path / "work")
    assert not (tmp_path / "derivatives").exists()  # a check, not a creation


@pytest.mark.parametrize(
    ("output", "work", "message"),
    [
        ("raw", None, "is the input BIDS dataset or inside it"),
        ("raw/derivatives/singlestrip", None, "is the input BIDS dataset or inside it"),
        ("raw/../raw", None, "is the input BIDS dataset or inside it"),
        ("out", "raw/work", "work folder"),
        ("file.txt/out", None, "is not a folder"),
    ],
)
def test_check_output_dir_refusals(tmp_path, output, work, message):
    raw = _raw(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match=message):
        check_output_dir(raw, tmp_path / output, tmp_path / work if work else None)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_check_output_dir_unwritable(tmp_path):
    raw = _raw(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(UserError, match="not writable"):
            check_output_dir(raw, locked / "out")
    finally:
        locked.chmod(0o700)


@needs_data
def test_outputs_validate_as_bids_derivatives(tmp_path):
    """Every file the app writes, named and described here, passes the real BIDS validator."""
    raw = make_bids_dataset(tmp_path / "raw", subjects=("mrtrix", "ms01", "pcasl"))
    out = tmp_path / "out"
    write_dataset_description(out, raw)
    sources = sorted(raw.glob("sub-*/*/*.nii.gz"))
    assert len(sources) == 5
    for source in sources:
        img = nib.load(source)
        outputs = image_outputs(source, raw, out)
        mask = np.zeros(img.shape[:3], np.uint8)
        mask[10:20, 10:20, 5:8] = 1
        atomic_write_nifti(nifti_like(img, mask, np.uint8), outputs.mask)
        atomic_write_json(outputs.mask_metadata(), outputs.mask_json)
        atomic_write_nifti(nifti_like(img, np.asanyarray(img.dataobj), img.get_data_dtype()), outputs.brain)
        atomic_write_json(outputs.brain_metadata(), outputs.brain_json)
        atomic_write_json({"brain_volume_ml": 1.0}, outputs.qc_json)
        atomic_write_bytes(b"\x89PNG", outputs.figure)
    atomic_write_bytes(b"<html></html>", out / "sub-mrtrix.html")
    warnings = validate_bids(out)
    assert not any("NOT_INCLUDED" in warning for warning in warnings)
