"""AE-QC verdict of a brain mask on its native grid, with a model bundle's autoencoder."""

from singlestrip_bids.errors import UserError


def qc_threshold(ae) -> float:
    """The pass threshold of an autoencoder's score (stored in its config; see docs/qc.md)."""
    from singlestrip_bids.model.autoencoder import DEFAULTS

    return float(ae.config.get("qc_threshold", DEFAULTS[ae.config["kind"]]["qc_threshold"]))


def score_mask(mask_native_img, bundle) -> dict:
    """Score a binary mask (nibabel image on any grid) with ``bundle.qc_ae``.

    The mask is conformed to the bundle's working grid (linear interpolation, ≥ 0.5) and scored by
    :func:`qc.autoencoder.ae_dice`. Returns ``{"ae_dice": float in [0, 1], "qc_pass": bool,
    "qc_threshold": float}``; UserError when the bundle has no QC autoencoder.
    """
    from singlestrip_bids.io.conform import conform_mask
    from singlestrip_bids.qc.autoencoder import ae_dice

    if bundle.qc_ae is None:
        raise UserError(f"model bundle {bundle.path} has no QC autoencoder (train one at the group level)")
    mask = conform_mask(mask_native_img, bundle.voxel_size, bundle.size_multiple)
    score = ae_dice(bundle.qc_ae, mask)
    threshold = qc_threshold(bundle.qc_ae)
    return {"ae_dice": round(score, 4), "qc_pass": bool(score >= threshold), "qc_threshold": threshold}
