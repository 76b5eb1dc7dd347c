"""io.validator: the real schema validator (bids-validator-deno) on valid and broken datasets."""

import pytest
from helpers_bids import DATA_DIR, data_available, make_bids_dataset
from helpers_errors import one_line_user_error

from singlestrip_bids.io.validator import validate_bids

pytestmark = pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_bids_dataset(tmp_path_factory.mktemp("bids") / "ds", subjects=("mrtrix", "ms01", "pcasl"),
                             with_masks=True, sessions=("1",))


def _error(path) -> str:
    return one_line_user_error(validate_bids, path)


def test_valid_dataset_returns_warnings(dataset):
    warnings = validate_bids(dataset)
    assert all(isinstance(line, str) and "\n" not in line for line in warnings)
    assert any(line.startswith("SIDECAR_KEY_RECOMMENDED") for line in warnings)


def test_empty_nifti_is_an_error(dataset, tmp_path):
    broken = make_bids_dataset(tmp_path / "ds", subjects=("mrtrix",))
    (broken / "sub-mrtrix/anat/sub-mrtrix_T1w.nii.gz").write_bytes(b"")
    message = _error(broken)
    assert message.startswith("BIDS validation failed: ")
    assert "EMPTY_FILE (/sub-mrtrix/anat/sub-mrtrix_T1w.nii.gz)" in message


def test_corrupt_header_is_an_error(tmp_path):
    broken = make_bids_dataset(tmp_path / "ds", subjects=("mrtrix",))
    (broken / "sub-mrtrix/anat/sub-mrtrix_T1w.nii.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 100)
    assert "NIFTI_HEADER_UNREADABLE" in _error(broken)


def test_missing_description_is_an_error(tmp_path):
    broken = make_bids_dataset(tmp_path / "ds", subjects=("mrtrix",))
    (broken / "dataset_description.json").unlink()
    assert "MISSING_DATASET_DESCRIPTION (dataset)" in _error(broken)


def test_missing_folder(tmp_path):
    assert "no such folder" in _error(tmp_path / "nothing")
