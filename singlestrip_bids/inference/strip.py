"""One image end to end, as three steps over files (each one a workflow node):

``conform_file`` (native image → working grid) → ``predict_file`` (P(brain) on the working grid)
→ ``postprocess_file`` (back to the native grid, mask and brain-extracted image with the input's header).
``strip_file`` runs the three in a temporary folder.
"""

import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from singlestrip_bids.inference.postprocess import postprocess_probability
from singlestrip_bids.io.atomic import atomic_write_nifti
from singlestrip_bids.io.conform import conform, unconform
from singlestrip_bids.io.nifti import load_image, nifti_like, voxel_sizes_mm
from singlestrip_bids.model.bundle import MASK_THRESHOLD


def _working_image(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
    img.header.set_xyzt_units("mm")
    return img


def conform_file(in_file, out_file, *, voxel_size, multiple) -> dict:
    """Resample ``in_file`` (3D, or 4D → mean over time) to the working grid; write it as NIfTI.

    ``voxel_size`` in mm, sizes padded to a multiple of ``multiple``. Returns
    ``{"nonfinite_voxels": NaN/Inf values in the input (set to 0), "seconds": wall time}``.
    """
    start = time.perf_counter()
    img = load_image(in_file)
    nonfinite = 0
    if np.issubdtype(img.get_data_dtype(), np.floating):
        nonfinite = int(np.count_nonzero(~np.isfinite(np.asanyarray(img.dataobj))))
    conformed = conform(img, voxel_size=voxel_size, multiple=multiple)
    atomic_write_nifti(_working_image(conformed.data, conformed.affine), out_file)
    return {"nonfinite_voxels": nonfinite, "seconds": time.perf_counter() - start}


def predict_file(conformed_file, out_file, *, bundle_path, device="auto", precision="auto") -> dict:
    """Write P(brain) (float32 in [0, 1]) on the working grid of ``conformed_file``.

    The model is loaded once per process; ``precision`` as in ``inference.predict.Predictor``.
    Returns ``{"device", "precision", "model_id", "seconds"}``.
    """
    from singlestrip_bids.inference.predict import get_predictor

    start = time.perf_counter()
    predictor = get_predictor(bundle_path, device, precision)
    conformed = nib.load(conformed_file)
    prob = predictor.predict_probability(conformed.get_fdata(dtype=np.float32))
    atomic_write_nifti(_working_image(prob, conformed.affine), out_file)
    return {
        "device": str(predictor.device),
        "precision": "fp32" if predictor.autocast is None else "bf16",
        "model_id": predictor.bundle.model_id,
        "seconds": time.perf_counter() - start,
    }


def postprocess_file(in_file, prob_file, mask_file, brain_file, *, border_mm=0.0,
                     threshold=MASK_THRESHOLD) -> dict:
    """Bring P(brain) back to ``in_file``'s grid, make the mask, write mask and brain image.

    The mask (P(brain) ≥ ``threshold``, the bundle's) is uint8 0/1, 3D, with the input's geometry;
    the brain image is the input times the mask (every volume of a 4D input; zero outside the mask,
    NaN/±Inf set to 0) in the input's data type.
    Returns ``{"brain_volume_ml", "n_components_removed", "seconds"}``.
    """
    start = time.perf_counter()
    img = load_image(in_file)
    prob_img = nib.load(prob_file)
    native_shape = tuple(img.shape[:3])
    prob = unconform(prob_img.get_fdata(dtype=np.float32), prob_img.affine, native_shape, img.affine,
                     floor=threshold)
    sizes = voxel_sizes_mm(img.affine)
    mask, removed = postprocess_probability(prob, sizes, threshold=threshold, border_mm=border_mm)
    atomic_write_nifti(nifti_like(img, mask, np.uint8), mask_file)
    data = np.asanyarray(img.dataobj)
    if np.issubdtype(data.dtype, np.floating):
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    inside = mask.astype(bool) if data.ndim == 3 else mask.astype(bool)[..., None]
    brain = np.where(inside, data, np.zeros((), data.dtype))  # NaN outside the mask becomes 0 too
    atomic_write_nifti(nifti_like(img, brain, img.get_data_dtype()), brain_file)
    return {
        "brain_volume_ml": float(mask.sum() * abs(np.linalg.det(img.affine[:3, :3])) / 1000.0),
        "n_components_removed": removed,
        "seconds": time.perf_counter() - start,
    }


def strip_file(in_file, mask_file, brain_file, *, bundle_path, device="auto", border_mm=0.0,
               precision="auto") -> dict:
    """Run the three steps on one image (intermediate files in a temporary folder).

    Returns the merged statistics of the steps, with ``seconds`` their total.
    """
    from singlestrip_bids.inference.predict import get_predictor

    bundle = get_predictor(bundle_path, device).bundle
    with tempfile.TemporaryDirectory(prefix="singlestrip_") as tmp:
        conformed, prob = Path(tmp) / "conformed.nii", Path(tmp) / "prob.nii"
        steps = [
            conform_file(in_file, conformed, voxel_size=bundle.voxel_size, multiple=bundle.size_multiple),
            predict_file(conformed, prob, bundle_path=bundle_path, device=device, precision=precision),
            postprocess_file(in_file, prob, mask_file, brain_file, border_mm=border_mm,
                             threshold=bundle.mask_threshold),
        ]
    return {**{key: value for step in steps for key, value in step.items()},
            "seconds": sum(step["seconds"] for step in steps)}
