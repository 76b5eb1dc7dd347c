"""The images with reference brain masks that the benchmarks score against.

Two sources: the shared test-data folder (``../shared/data`` beside the repository, one folder per
source, see each PROVENANCE.md) or a BIDS dataset whose reference masks are in ``derivatives/``
(``…_desc-brain_mask.nii[.gz]``, as sMRIPrep writes them).
"""

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class Case:
    """One image and its reference mask on the same native grid."""

    name: str  # unique, e.g. "fs_training_t1/sub-01"
    dataset: str
    contrast: str  # T1w, T2w, FLAIR, PDw, "T2w rat"
    image: Path
    reference: Path
    clean_reference: bool = False  # keep the largest component and fill holes before scoring

    @property
    def reference_note(self) -> str:
        return "largest component + holes filled" if self.clean_reference else ""


# (folder, image glob, reference name ({stem}: image name without extension), contrast, clean)
SHARED_LAYOUT = [
    ("fs_training_t1", "sub-*/T1.mgz", "brainmask_bin.nii.gz", "T1w", False),
    # BET output with 99 specks and small midline gaps (PROVENANCE.md): cleaned, and reported so.
    ("colin27_ch2", "ch2.nii.gz", "ch2_brainmask_from-ch2bet.nii.gz", "T1w", True),
    ("mrtrix_scripttest_sub01", "sub-01_T1w.nii.gz", "sub-01_brainmask.nii.gz", "T1w", False),
    ("ms_lesjak_longitudinal", "patient*/study*_T1W.nii.gz", "{stem}_brainmask.nii.gz", "T1w", False),
    ("ms_lesjak_longitudinal", "patient*/study*_T2W.nii.gz", "{stem}_brainmask.nii.gz", "T2w", False),
    ("ms_lesjak_longitudinal", "patient*/study*_FLAIR.nii.gz", "{stem}_brainmask.nii.gz", "FLAIR", False),
    ("icbm152_2009c_2mm", "2mm_T1.nii.gz", "2mm_brainmask.nii.gz", "T1w", False),
    ("icbm152_2009c_2mm", "2mm_T2.nii.gz", "2mm_brainmask.nii.gz", "T2w", False),
    ("icbm152_2009c_2mm", "2mm_PD.nii.gz", "2mm_brainmask.nii.gz", "PDw", False),
    ("rat_t2rare_u2net", "T2TurboRARE.nii", "mask_T2TurboRARE_imgaffine.nii.gz", "T2w rat", False),
]

ANAT_SUFFIXES = ("T1w", "T2w", "FLAIR", "PDw", "T2starw", "inplaneT1", "inplaneT2", "PD", "T1map")


def image_stem(path: Path) -> str:
    """File name without .nii, .nii.gz or .mgz."""
    name = path.name
    for extension in (".nii.gz", ".nii", ".mgz"):
        if name.endswith(extension):
            return name[: -len(extension)]
    return path.stem


def shared_cases(data_dir: Path) -> list:
    """Every image of the shared test-data layout that has a reference mask, in a fixed order."""
    cases = []
    for folder, pattern, reference, contrast, clean in SHARED_LAYOUT:
        for image in sorted((data_dir / folder).glob(pattern)):
            mask = image.parent / reference.format(stem=image_stem(image))
            if not mask.is_file():
                continue
            relative = image.parent.relative_to(data_dir / folder)
            label = folder if relative == Path(".") else f"{folder}/{relative.as_posix()}"
            name = label if folder == "fs_training_t1" else f"{label}/{image_stem(image)}"
            cases.append(Case(name, folder, contrast, image, mask, clean))
    return cases


def bids_cases(bids_dir: Path) -> list:
    """Raw anatomical images of a BIDS dataset that have a reference mask in a ``derivatives/`` folder.

    The mask is looked for under the name this app gives its own masks (docs/outputs.md), which is
    sMRIPrep's for T1w images: ``sub-01[_ses-1]_desc-brain_mask.nii.gz`` for a T1w image,
    ``…_space-T2w_desc-brain_mask.nii.gz`` for a T2w image, in each ``derivatives/<name>/``.
    """
    from singlestrip_bids.io.derivatives import image_outputs

    roots = sorted(path for path in (bids_dir / "derivatives").glob("*") if path.is_dir())
    cases = []
    for image in sorted(bids_dir.glob("sub-*/**/anat/sub-*.nii*")):
        suffix = image_stem(image).rsplit("_", 1)[-1]
        if suffix not in ANAT_SUFFIXES:
            continue
        for root in roots:
            mask = image_outputs(image, bids_dir, root).mask
            if mask.is_file():
                cases.append(Case(image_stem(image), bids_dir.name, suffix, image, mask))
                break
    return cases


def discover(data_dir: Path) -> list:
    """Cases of a BIDS dataset (it has dataset_description.json), or of the shared layout with the
    mouse and fetal BIDS datasets in it."""
    data_dir = Path(data_dir)
    if (data_dir / "dataset_description.json").is_file():
        return bids_cases(data_dir)
    return shared_cases(data_dir) + mouse_cases(data_dir) + fetal_cases(data_dir)


def load_reference(case):
    """The reference mask of ``case`` (bool (X, Y, Z), native grid), its image and voxel sizes in mm.

    A case marked ``clean_reference`` keeps its largest component with holes filled (the app's own
    post-processing). Returns ``(mask, reference image, voxel sizes)``.
    """
    import numpy as np

    from singlestrip_bids.inference.postprocess import postprocess_probability
    from singlestrip_bids.io.nifti import load_image, voxel_sizes_mm

    img = load_image(case.reference)
    sizes = voxel_sizes_mm(img.affine)
    mask = np.asanyarray(img.dataobj) > 0
    if case.clean_reference:
        mask = postprocess_probability(mask.astype(np.float32), sizes)[0].astype(bool)
    return mask, img, sizes


def mouse_cases(data_dir: Path) -> list:
    """The mouse EPI images of ``mouse_epi_sidneyp`` (BIDS) that have the paper's manual mask.

    Named ``mouse_epi_sidneyp/sub-AA/ses-S``; the animal is the name's second part (folds split by it).
    """
    root = Path(data_dir) / "mouse_epi_sidneyp"
    cases = []
    for image in sorted(root.glob("sub-*/ses-*/anat/*_T2starw.nii.gz")):
        subject, session = image.parts[-4], image.parts[-3]
        masks = root / "derivatives" / "manual" / subject / session / "anat"
        mask = masks / f"{subject}_{session}_desc-brain_mask.nii.gz"
        if mask.is_file():
            cases.append(Case(f"{root.name}/{subject}/{session}", root.name, "T2starw", image, mask))
    return cases


def mouse_unlabeled(data_dir: Path) -> list:
    """The mouse images without a manual mask (self-training may use them; they score nothing)."""
    root = Path(data_dir) / "mouse_epi_sidneyp"
    masked = {case.image for case in mouse_cases(data_dir)}
    return [image for image in sorted(root.glob("sub-*/ses-*/anat/*_T2starw.nii.gz")) if image not in masked]


def fetal_cases(data_dir: Path) -> list:
    """The six fetal T2w stacks of ``fetal_t2w_mialsrtk`` with their manual masks (BIDS 1.2 naming)."""
    root = Path(data_dir) / "fetal_t2w_mialsrtk"
    cases = []
    for image in sorted(root.glob("sub-*/anat/*_T2w.nii.gz")):
        masks = root / "derivatives" / "manual_masks" / image.parts[-3] / "anat"
        mask = masks / f"{image_stem(image)}_desc-brain_mask.nii.gz"
        if mask.is_file():
            cases.append(Case(f"{root.name}/{image_stem(image)}", root.name, "T2w fetal", image, mask))
    return cases
