"""One image end to end, in memory: ``conform_step`` (native image → working grid) →
``predict_step`` (P(brain) on the working grid) → ``postprocess_step`` (back to the native grid: mask
and brain-extracted image with the input's header). :func:`strip_image` runs the three and keeps what
QC and the report figure need; :func:`strip_file` also writes the mask and brain image.
"""

import time
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from singlestrip_bids.inference.postprocess import border_margins, postprocess_probability
from singlestrip_bids.io.atomic import atomic_write_nifti
from singlestrip_bids.io.conform import Conformed, conform, unconform_box
from singlestrip_bids.io.nifti import load_image, mask_volume_ml, nifti_like, voxel_sizes_mm
from singlestrip_bids.model.bundle import MASK_THRESHOLD


@dataclass
class Stripped:
    """One image stripped in memory."""

    image: nib.spatialimages.SpatialImage  #: the raw image as loaded (3D or 4D)
    conformed: Conformed  #: the image on the working grid
    mask: np.ndarray  #: uint8 0/1 (X, Y, Z), the raw image's grid
    brain: np.ndarray  #: the raw image times the mask, its shape and data type
    stats: dict  #: step ("conform", "predict", "postprocess") → its statistics, each with ``seconds``

    def mask_image(self):
        return nifti_like(self.image, self.mask, np.uint8)

    def brain_image(self):
        return nifti_like(self.image, self.brain, self.image.get_data_dtype())


def conform_step(img, *, voxel_size, multiple) -> tuple[Conformed, dict]:
    """Resample ``img`` (3D, or 4D → mean over time) to the working grid (``voxel_size`` mm, sizes a
    multiple of ``multiple``). Returns the conformed image and ``{"nonfinite_voxels": NaN/Inf values
    in the input (set to 0), "seconds"}``."""
    start = time.perf_counter()
    nonfinite = 0
    if np.issubdtype(img.get_data_dtype(), np.floating):
        nonfinite = int(np.count_nonzero(~np.isfinite(np.asanyarray(img.dataobj))))
    conformed = conform(img, voxel_size=voxel_size, multiple=multiple)
    return conformed, {"nonfinite_voxels": nonfinite, "seconds": time.perf_counter() - start}


def predict_step(conformed: Conformed, predictor) -> tuple[np.ndarray, dict]:
    """P(brain) (float32 in [0, 1], the working grid) from ``predictor`` (``inference.predict``).
    Returns it and ``{"device", "precision", "model_id", "seconds"}``."""
    start = time.perf_counter()
    prob = predictor.predict_probability(conformed.data)
    return prob, {
        "device": str(predictor.device),
        "precision": "fp32" if predictor.autocast is None else "bf16",
        "model_id": predictor.bundle.model_id,
        "seconds": time.perf_counter() - start,
    }


def postprocess_step(img, prob, prob_affine, *, border_mm=0.0, threshold=MASK_THRESHOLD) -> tuple:
    """Bring P(brain) (working grid, ``prob_affine``) back to ``img``'s grid and make the mask.

    The mask (P(brain) ≥ ``threshold``, the bundle's; largest component, holes filled, grown or shrunk
    by ``border_mm``) is uint8 0/1 on ``img``'s grid; the brain image is the input times the mask
    (every volume of a 4D input; zero outside the mask, NaN/±Inf set to 0) in the input's data type.
    Returns ``(mask, brain, {"brain_volume_ml", "n_components_removed", "seconds"})``.
    """
    start = time.perf_counter()
    shape, sizes = tuple(img.shape[:3]), voxel_sizes_mm(img.affine)
    # Everything outside the box where P(brain) can reach the threshold is background: post-process
    # the box only. Outputs are Fortran-ordered, as NIfTI stores them, which makes writing them fast.
    box, prob = unconform_box(prob, prob_affine, shape, img.affine, threshold, border_margins(sizes, border_mm))
    mask = np.zeros(shape, np.uint8, order="F")
    data = np.asanyarray(img.dataobj)
    brain = np.zeros(data.shape, data.dtype, order="F")
    removed = 0
    if box is not None:
        mask[box], removed = postprocess_probability(prob, sizes, threshold=threshold, border_mm=border_mm)
        inside = mask[box].astype(bool)
        values = data[box]
        if np.issubdtype(values.dtype, np.floating):
            values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        brain[box] = np.where(inside if values.ndim == 3 else inside[..., None], values, np.zeros((), data.dtype))
    return mask, brain, {
        "brain_volume_ml": mask_volume_ml(mask, img.affine),
        "n_components_removed": removed,
        "seconds": time.perf_counter() - start,
    }


def strip_image(in_file, *, bundle_path, device="auto", border_mm=0.0, precision="auto") -> Stripped:
    """Load ``in_file`` (NIfTI/MGZ, 3D or 4D) and run the three steps with the bundle's predictor
    (built once per process: ``inference.predict.get_predictor``)."""
    from singlestrip_bids.inference.predict import get_predictor

    predictor = get_predictor(bundle_path, device, precision)
    bundle = predictor.bundle
    img = load_image(in_file)
    conformed, conform_stats = conform_step(img, voxel_size=bundle.voxel_size, multiple=bundle.size_multiple)
    prob, predict_stats = predict_step(conformed, predictor)
    mask, brain, post_stats = postprocess_step(img, prob, conformed.affine, border_mm=border_mm,
                                               threshold=bundle.mask_threshold)
    return Stripped(img, conformed, mask, brain,
                    {"conform": conform_stats, "predict": predict_stats, "postprocess": post_stats})


def strip_file(in_file, mask_file, brain_file, *, bundle_path, device="auto", border_mm=0.0,
               precision="auto") -> dict:
    """:func:`strip_image`, then write the mask and the brain image (each atomically).

    Returns the steps' statistics merged into one dict, with ``seconds`` their total.
    """
    stripped = strip_image(in_file, bundle_path=bundle_path, device=device, border_mm=border_mm,
                           precision=precision)
    atomic_write_nifti(stripped.mask_image(), mask_file)
    atomic_write_nifti(stripped.brain_image(), brain_file)
    steps = stripped.stats.values()
    return {**{key: value for step in steps for key, value in step.items()},
            "seconds": sum(step["seconds"] for step in steps)}
