"""The QC score of a mask made by another tool (``--qc-masks``; the driver is ``cli.qc_masks``)."""

import time
from pathlib import Path

import numpy as np

GRID_TOLERANCE = 1e-3  #: largest difference allowed between the affines of a mask and its image (mm)


def score_external_mask(image, mask_path, bundle) -> dict:
    """QC statistics of one external mask, or ``{"error": message}`` when it cannot be scored."""
    import nibabel as nib

    from singlestrip_bids.io.nifti import mask_volume_ml
    from singlestrip_bids.qc.score import score_mask

    mask_path = Path(mask_path)
    if not mask_path.is_file():
        return {"error": f"no mask {mask_path.name} in the --qc-masks dataset"}
    image_img, mask_img = nib.load(image), nib.load(mask_path)
    if tuple(mask_img.shape[:3]) != tuple(image_img.shape[:3]) or mask_img.ndim != 3:
        return {"error": f"mask shape {mask_img.shape} differs from the image's {image_img.shape[:3]}"}
    if not np.allclose(mask_img.affine, image_img.affine, atol=GRID_TOLERANCE):
        return {"error": "mask is not on the image's voxel grid (different affine)"}
    start = time.perf_counter()
    conformed = None
    if bundle.dice_estimator is not None:
        from singlestrip_bids.io.conform import conform

        conformed = conform(image_img, bundle.voxel_size, bundle.size_multiple).data
    stats = score_mask(mask_img, bundle, conformed)
    volume = mask_volume_ml(np.asanyarray(mask_img.dataobj) > 0, mask_img.affine)
    return {**stats, "brain_volume_ml": round(volume, 2), "seconds": time.perf_counter() - start}
