"""io.bids: label normalisation, image selection through PyBIDS, the labeled mask and its checks."""

import json
import re
import shutil

import nibabel as nib
import numpy as np
import pytest
from helpers_bids import DATA_DIR, data_available, make_bids_dataset
from helpers_errors import one_line_user_error

from singlestrip_bids.errors import UserError
from singlestrip_bids.io.bids import (
    check_labeled_mask,
    collect_images,
    find_labeled_mask,
    image_of_mask,
    load_bids_filters,
    normalize_labels,
)

pytestmark = pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_bids_dataset(tmp_path_factory.mktemp("bids") / "ds", subjects=("mrtrix", "ms01", "pcasl"),
                             with_masks=True)


@pytest.fixture(scope="module")
def sessions_dataset(tmp_path_factory):
    return make_bids_dataset(tmp_path_factory.mktemp("bids") / "ds", subjects=("mrtrix",), sessions=("1", "2"))


def _names(paths):
    return [path.name for path in paths]


def test_normalize_labels():
    assert normalize_labels(["sub-01", "01", "02", "sub-ABc3"], "sub") == ["01", "02", "ABc3"]
    assert normalize_labels("ses-pre", "ses") == ["pre"]
    assert normalize_labels(None, "sub") is None


@pytest.mark.parametrize("label", ["../x", "sub-../x", "a/b", "*", "sub-", "", "01 ", "sub-01_T1w", "ses-1"])
def test_normalize_labels_refuses_non_labels(label):
    with pytest.raises(UserError, match="letters and digits only"):
        normalize_labels([label], "sub")


def test_collect_all_t1w(dataset):
    images = collect_images(dataset)
    assert _names(images) == ["sub-mrtrix_T1w.nii.gz", "sub-ms01_T1w.nii.gz"]
    assert all(path.is_absolute() and path.is_file() for path in images)


def test_collect_by_participant_and_suffix(dataset):
    images = collect_images(dataset, participant_labels=["sub-ms01"], suffixes=("T2w", "FLAIR"))
    assert _names(images) == ["sub-ms01_FLAIR.nii.gz", "sub-ms01_T2w.nii.gz"]
    assert _names(collect_images(dataset, suffixes=("bold",))) == ["sub-pcasl_task-rest_bold.nii.gz"]


def test_derivatives_never_collected(dataset):
    images = collect_images(dataset, suffixes=("T1w", "mask"))
    assert not any("derivatives" in path.parts for path in images)


def test_collect_by_session_and_filters(sessions_dataset, tmp_path):
    by_label = collect_images(sessions_dataset, session_labels=["ses-2"])
    assert _names(by_label) == ["sub-mrtrix_ses-2_T1w.nii.gz"]
    filter_file = tmp_path / "filters.json"
    filter_file.write_text(json.dumps({"T1w": {"session": "1", "acquisition": None}, "bold": {"task": "x"}}))
    by_filter = collect_images(sessions_dataset, bids_filters=load_bids_filters(filter_file))
    assert _names(by_filter) == ["sub-mrtrix_ses-1_T1w.nii.gz"]
    any_session = collect_images(sessions_dataset, bids_filters={"t1w": {"session": "*"}})
    assert _names(any_session) == ["sub-mrtrix_ses-1_T1w.nii.gz", "sub-mrtrix_ses-2_T1w.nii.gz"]
    with pytest.raises(UserError, match='filters {"t1w": {"session": null}}'):
        collect_images(sessions_dataset, bids_filters={"t1w": {"session": None}})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"participant_labels": ["nobody"]},
         r"participant label\(s\) not found: nobody \(dataset has: mrtrix, ms01, pcasl\)"),
        ({"session_labels": ["1"]}, r"session label\(s\) not found: 1 \(dataset has: none\)"),
        ({"participant_labels": ["../x"]}, "letters and digits only"),
        ({"suffixes": ("PDw",)}, "no NIfTI images in .* match suffix PDw"),
        ({"participant_labels": ["pcasl"], "suffixes": ("T1w",)}, "match suffix T1w, participant pcasl"),
        ({"bids_filters": {"t1w": {"acquisition": "none"}}}, r'filters \{"t1w": \{"acquisition": "none"\}\}'),
        ({"bids_filters": {"t1w": {"colour": "red"}}}, "bad BIDS filter for T1w"),
    ],
)
def test_collect_errors(dataset, arguments, message):
    assert re.search(message, one_line_user_error(collect_images, dataset, **arguments))


def test_not_a_bids_folder(tmp_path):
    with pytest.raises(UserError, match="not a BIDS dataset"):
        collect_images(tmp_path)
    with pytest.raises(UserError, match="no such folder"):
        collect_images(tmp_path / "missing")


@pytest.mark.parametrize(("content", "message"), [("{not json", "not valid JSON"), ('["t1w"]', "expected"),
                                                  ('{"t1w": "x"}', "expected")])
def test_bad_filter_files(tmp_path, content, message):
    path = tmp_path / "filters.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_bids_filters(path)
    with pytest.raises(UserError, match="cannot read"):
        load_bids_filters(tmp_path / "missing.json")


def test_find_labeled_mask(dataset):
    image, mask = find_labeled_mask(dataset, "sub-mrtrix")
    assert image == dataset / "sub-mrtrix/anat/sub-mrtrix_T1w.nii.gz"
    assert mask == dataset / "derivatives/manual/sub-mrtrix/anat/sub-mrtrix_desc-brain_mask.nii.gz"
    image, mask = find_labeled_mask(dataset, "ms01", suffix="T2w")
    assert (image.name, mask.name) == ("sub-ms01_T2w.nii.gz", "sub-ms01_space-T2w_desc-brain_mask.nii.gz")


def test_find_labeled_mask_errors(dataset, tmp_path):
    with pytest.raises(UserError, match="no brain mask for sub-pcasl bold"):
        find_labeled_mask(dataset, "pcasl", suffix="bold")
    with pytest.raises(UserError, match="sub-pcasl has no T1w image"):
        find_labeled_mask(dataset, "pcasl")
    with pytest.raises(UserError, match="not found: ghost"):
        find_labeled_mask(dataset, "ghost")
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    shutil.copytree(copy / "derivatives" / "manual", copy / "derivatives" / "other")
    with pytest.raises(UserError, match="2 brain masks match sub-mrtrix T1w"):
        find_labeled_mask(copy, "mrtrix")


FETAL = DATA_DIR / "fetal_t2w_mialsrtk"
MOUSE = DATA_DIR / "mouse_epi_sidneyp"


def test_labeled_mask_of_a_bids_1_2_derivative_chosen_by_filter():
    """Six fetal stacks, each with a mask named the BIDS 1.2 way (…_T2w_desc-brain_mask) in a
    derivative described by PipelineDescription: ambiguous until a filter picks one run."""
    with pytest.raises(UserError, match=r'6 brain masks match sub-01 T2w: sub-01_run-1_T2w_desc-brain_mask.*'
                                        r'\{"t2w": \{"run": 1\}\}'):
        find_labeled_mask(FETAL, "01", suffix="T2w")
    image, mask = find_labeled_mask(FETAL, "01", suffix="T2w", bids_filters={"t2w": {"run": 3}})
    assert (image.name, mask.name) == ("sub-01_run-3_T2w.nii.gz", "sub-01_run-3_T2w_desc-brain_mask.nii.gz")
    assert image.parents[2].samefile(FETAL)


def test_labeled_mask_without_space_for_a_non_t1w_suffix():
    """Mouse EPI masks carry the image's entities and no space: they are its masks."""
    with pytest.raises(UserError, match=r'2 brain masks match sub-07 T2starw.*"session": "1"'):
        find_labeled_mask(MOUSE, "07", suffix="T2starw")
    image, mask = find_labeled_mask(MOUSE, "07", suffix="T2starw", bids_filters={"t2starw": {"session": "2"}})
    assert (image.name, mask.name) == ("sub-07_ses-2_T2starw.nii.gz", "sub-07_ses-2_desc-brain_mask.nii.gz")


@pytest.mark.parametrize("layout", ["no derivatives folder", "no dataset_description"])
def test_labeled_mask_missing_derivatives_is_one_line(dataset, tmp_path, layout):
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    if layout == "no derivatives folder":
        shutil.rmtree(copy / "derivatives")
    else:
        (copy / "derivatives" / "manual" / "dataset_description.json").unlink()
    with pytest.raises(UserError, match="no brain mask for sub-mrtrix T1w .* give one with --labeled-mask"):
        find_labeled_mask(copy, "mrtrix")


def test_image_of_mask_by_entities():
    runs = sorted((FETAL / "sub-01" / "anat").glob("*_T2w.nii.gz"))
    chosen = image_of_mask(runs, "anywhere/sub-01_run-5_T2w_desc-brain_mask.nii.gz")
    assert chosen.name == "sub-01_run-5_T2w.nii.gz"
    assert image_of_mask(runs[:1], "my_mask.nii.gz") == runs[0]
    with pytest.raises(UserError, match="6 images could go with --labeled-mask my_mask.nii.gz"):
        image_of_mask(runs, "my_mask.nii.gz")


@pytest.fixture(scope="module")
def mrtrix():
    folder = DATA_DIR / "mrtrix_scripttest_sub01"
    return nib.load(folder / "sub-01_T1w.nii.gz"), nib.load(folder / "sub-01_brainmask.nii.gz")


def test_check_labeled_mask_accepts_reference(mrtrix):
    image, mask = mrtrix
    checked = check_labeled_mask(image, mask)
    assert checked.dtype == np.uint8 and checked.shape == image.shape
    assert np.array_equal(checked, np.asanyarray(mask.dataobj))


def _variant(mask_img, data=None, shift_mm=0.0):
    affine = mask_img.affine.copy()
    affine[0, 3] += shift_mm
    return nib.Nifti1Image(np.asanyarray(mask_img.dataobj) if data is None else data, affine)


def test_check_labeled_mask_grid_tolerance(mrtrix):
    image, mask = mrtrix
    check_labeled_mask(image, _variant(mask, shift_mm=1e-4))
    with pytest.raises(UserError, match="not on the image's voxel grid"):
        check_labeled_mask(image, _variant(mask, shift_mm=0.01))
    with pytest.raises(UserError, match="shape"):
        check_labeled_mask(image, _variant(mask, data=np.asanyarray(mask.dataobj)[:-1]))


def test_check_labeled_mask_content(mrtrix):
    image, mask = mrtrix
    data = np.asanyarray(mask.dataobj).copy()
    with pytest.raises(UserError, match="empty"):
        check_labeled_mask(image, _variant(mask, data=np.zeros_like(data)))
    with pytest.raises(UserError, match="not binary"):
        check_labeled_mask(image, _variant(mask, data=data * 2))
    data[0, 0, 0] = 1  # an isolated speck in a corner
    with pytest.raises(UserError, match="2 separate parts"):
        check_labeled_mask(image, _variant(mask, data=data))


def test_check_labeled_mask_real_speckled_mask():
    folder = DATA_DIR / "fs_training_t1" / "sub-01"
    with pytest.raises(UserError, match="3 separate parts"):
        check_labeled_mask(nib.load(folder / "T1.mgz"), nib.load(folder / "brainmask_bin.nii.gz"))
