"""``--qc-masks DERIV_DIR``: score the brain masks of another derivatives dataset, predict nothing.

Each selected image's mask is looked up in ``DERIV_DIR`` under the name this package gives its own
masks (``sub-01/anat/sub-01_desc-brain_mask.nii.gz``, the fMRIPrep/sMRIPrep name; non-T1w images add
``space-<suffix>``). Its AE-QC score and estimated Dice go into the image's QC JSON in ``output_dir``:
a bundle without a trained Dice estimator estimates by agreement with its U-Net
(``model.estimator.estimator_from_unet``), a fair second opinion on another tool's mask. A missing mask
or one on another voxel grid than its image is recorded as an ``error`` in that QC JSON and logged;
the other images are still scored. The scored masks of one session then pass the session check of
their volumes (``qc.consistency``), as the participant level's own masks do.
"""

import logging
from pathlib import Path

LOGGER = logging.getLogger("singlestrip_bids")


def run_qc_masks(settings) -> int:
    """Write a QC JSON for every selected image from its mask in ``settings.qc_masks``; returns 0."""
    from singlestrip_bids.cli.participant import select_images
    from singlestrip_bids.errors import UserError
    from singlestrip_bids.io.atomic import atomic_write_json
    from singlestrip_bids.io.bids import bids_metadata
    from singlestrip_bids.io.derivatives import image_outputs, write_dataset_description
    from singlestrip_bids.io.outputs import qc_document
    from singlestrip_bids.model.bundle import load_bundle, resolve_bundle_path
    from singlestrip_bids.qc.consistency import check_session_volumes
    from singlestrip_bids.qc.external import score_external_mask

    deriv_dir = Path(settings.qc_masks)
    if not deriv_dir.is_dir():
        raise UserError(f"--qc-masks {deriv_dir} is not a directory")
    bundle_path = resolve_bundle_path(settings.model, settings.output_dir)
    bundle = load_bundle(bundle_path)
    if bundle.dice_estimator is None:
        from dataclasses import replace

        from singlestrip_bids.model.estimator import estimator_from_unet

        bundle = replace(bundle, dice_estimator=estimator_from_unet(bundle.unet))
    images = select_images(settings)
    meta = bids_metadata(settings.bids_dir, images)
    recorded = {"qc_masks": str(deriv_dir), "model": str(bundle_path)}
    failed, scored = 0, []
    for image in images:
        mask_path = image_outputs(image, settings.bids_dir, deriv_dir).mask
        stats = score_external_mask(image, mask_path, bundle)
        stats["mask_source"] = str(mask_path)
        if "error" in stats:
            failed += 1
            LOGGER.warning("%s: not scored: %s", image.name, stats["error"])
        else:
            LOGGER.info("%s: %s %.3f (%s)", image.name, stats["qc_score"], stats[stats["qc_score"]],
                        "pass" if stats["qc_pass"] else "flagged")
        outputs = image_outputs(image, settings.bids_dir, settings.output_dir)
        stats["model_id"] = bundle.model_id
        document = qc_document(outputs, steps={"qc": stats}, bids_meta=meta.get(str(image)), settings=recorded)
        atomic_write_json(document, outputs.qc_json)
        if "error" not in stats:
            scored.append(outputs.qc_json)
    check_session_volumes(scored)
    write_dataset_description(settings.output_dir, settings.bids_dir)
    print(f"QC of {len(images) - failed} external mask(s) written to {settings.output_dir}"
          + (f"; {failed} image(s) could not be scored (see their QC JSON)" if failed else ""))
    return 0
