"""Assemble small, valid BIDS datasets from the real images of ``../shared/data`` for tests.

``make_bids_dataset(root, subjects=("01", "02"), with_masks=True)`` writes ``root/`` as a raw BIDS
dataset that the schema validator accepts (dataset_description.json, README, participants.tsv,
sidecars) and returns ``root``. Subject keys (the BIDS participant label each one gets):

=========  =================================================================================
``01``…    ``fs_training_t1/sub-0X`` T1.mgz (LIA, 1 mm, 256³) converted to NIfTI; X in 1, 2, 4, 5, 6
``mrtrix`` ``mrtrix_scripttest_sub01`` T1w (oblique affine, 1.8×1.875×1.875 mm, float32)
``ms01``   ``ms_lesjak_longitudinal/patient01`` study1 T1w, T2w, FLAIR (LPS, 3–4 mm slices, uint16)
``ms03``   ``ms_lesjak_longitudinal/patient03`` study2 T1w, T2w, FLAIR
``colin``  ``colin27_ch2`` T1w (1 mm, uint8)
``pcasl``  ``niivue_nomask/pcasl`` 4D pCASL series (3×3×6 mm, 10 volumes) as ``func/…_task-rest_bold``
=========  =================================================================================

``with_masks=True`` adds ``derivatives/manual/`` holding each image's reference mask, named as this
package names its own masks (``sub-01_desc-brain_mask.nii.gz``; non-T1w images carry
``space-<suffix>``). ``sessions=("1", "2")`` puts every image of every subject in each session.
NIfTI sources are copied byte for byte; only the MGZ heads are converted (data and affine unchanged).
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from singlestrip_bids.io.derivatives import image_outputs

DATA_DIR = Path(__file__).parents[1].parent / "shared" / "data"


@dataclass(frozen=True)
class SourceImage:
    """One real image of ../shared/data and where it goes in a BIDS subject folder."""

    datatype: str
    name: str  # BIDS file name after "sub-<label>[_ses-<s>]_", e.g. "T1w.nii.gz"
    image: str  # path relative to DATA_DIR
    mask: str | None  # reference brain mask relative to DATA_DIR, same grid as image
    sidecar: tuple = ()  # (key, value) pairs of the JSON sidecar


def _fs(number: str) -> list[SourceImage]:
    folder = f"fs_training_t1/sub-{number}"
    return [SourceImage("anat", "T1w.nii.gz", f"{folder}/T1.mgz", f"{folder}/brainmask_bin.nii.gz")]


def _ms(patient: str, study: str) -> list[SourceImage]:
    folder = f"ms_lesjak_longitudinal/{patient}/{study}"
    return [
        SourceImage("anat", f"{bids}.nii.gz", f"{folder}_{raw}.nii.gz", f"{folder}_{raw}_brainmask.nii.gz")
        for bids, raw in (("T1w", "T1W"), ("T2w", "T2W"), ("FLAIR", "FLAIR"))
    ]


CATALOGUE: dict[str, list[SourceImage]] = {
    **{number: _fs(number) for number in ("01", "02", "04", "05", "06")},
    "mrtrix": [
        SourceImage(
            "anat",
            "T1w.nii.gz",
            "mrtrix_scripttest_sub01/sub-01_T1w.nii.gz",
            "mrtrix_scripttest_sub01/sub-01_brainmask.nii.gz",
        )
    ],
    "ms01": _ms("patient01", "study1"),
    "ms03": _ms("patient03", "study2"),
    "colin": [
        SourceImage("anat", "T1w.nii.gz", "colin27_ch2/ch2.nii.gz", "colin27_ch2/ch2_brainmask_from-ch2bet.nii.gz")
    ],
    "pcasl": [
        SourceImage(
            "func",
            "task-rest_bold.nii.gz",
            "niivue_nomask/pcasl.nii.gz",
            None,
            (("RepetitionTime", 2.54), ("TaskName", "rest")),
        )
    ],
}


def data_available() -> bool:
    """Whether ../shared/data is present (tests skip with a message when it is not)."""
    return DATA_DIR.is_dir()


def make_bids_dataset(root, subjects=("01", "02"), *, with_masks=False, sessions=()) -> Path:
    """Write a valid raw BIDS dataset at ``root`` (created; must not exist or be empty).

    Parameters
    ----------
    root : path of the dataset folder.
    subjects : keys of ``CATALOGUE`` (also the participant labels).
    with_masks : also write the reference masks under ``derivatives/manual/``.
    sessions : session labels; empty for a dataset without sessions.

    Returns the dataset root as a ``Path``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    unknown = [label for label in subjects if label not in CATALOGUE]
    if unknown:
        raise KeyError(f"unknown subject keys {unknown}; known: {sorted(CATALOGUE)}")
    _write_json(
        root / "dataset_description.json",
        {
            "Name": "singlestrip_bids test dataset",
            "BIDSVersion": "1.10.0",
            "DatasetType": "raw",
            "License": "CC-BY-4.0",
            "Authors": ["singlestrip_bids tests"],
        },
    )
    (root / "README").write_text(
        "Test dataset assembled from public MRI images (see each source's PROVENANCE.md).\n"
    )
    rows = "".join(f"sub-{label}\n" for label in subjects)
    (root / "participants.tsv").write_text("participant_id\n" + rows)
    if with_masks:
        _write_json(
            root / "derivatives" / "manual" / "dataset_description.json",
            {
                "Name": "reference brain masks",
                "BIDSVersion": "1.10.0",
                "DatasetType": "derivative",
                "GeneratedBy": [{"Name": "manual"}],
            },
        )
    for label in subjects:
        for session in sessions or (None,):
            for source in CATALOGUE[label]:
                _add_image(root, label, session, source, with_masks)
    return root


def _add_image(root: Path, label: str, session: str | None, source: SourceImage, with_mask: bool) -> None:
    prefix = f"sub-{label}" + (f"_ses-{session}" if session else "")
    folder = root / f"sub-{label}" / (f"ses-{session}" if session else "") / source.datatype
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{prefix}_{source.name}"
    _copy_as_nifti(DATA_DIR / source.image, target)
    if source.sidecar:
        _write_json(target.with_name(target.name.replace(".nii.gz", ".json")), dict(source.sidecar))
    if with_mask and source.mask:
        mask = image_outputs(target, root, root / "derivatives" / "manual").mask
        mask.parent.mkdir(parents=True, exist_ok=True)
        _copy_as_nifti(DATA_DIR / source.mask, mask)


def _copy_as_nifti(source: Path, target: Path) -> None:
    if source.name.endswith(".nii.gz"):
        shutil.copyfile(source, target)
        return
    img = nib.load(source)
    nifti = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine)
    nifti.header.set_xyzt_units("mm")
    nifti.set_qform(img.affine, code=1)
    nifti.set_sform(img.affine, code=1)
    nib.save(nifti, target)


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")
