"""The QC verdict of a brain mask on its native grid, from a model bundle's QC networks."""

from singlestrip_bids.errors import UserError


def qc_threshold(ae) -> float:
    """The pass threshold of an autoencoder's score (stored in its config; see docs/qc.md)."""
    from singlestrip_bids.model.autoencoder import DEFAULTS

    return float(ae.config.get("qc_threshold", DEFAULTS[ae.config["kind"]]["qc_threshold"]))


def score_mask(mask_native_img, bundle, conformed=None) -> dict:
    """Score a binary mask (nibabel image on any grid) with ``bundle``'s QC networks.

    The mask is conformed to the bundle's working grid (linear interpolation, ≥ 0.5). The autoencoder
    gives ``ae_dice`` (:func:`qc.autoencoder.ae_dice`); the Dice estimator, given ``conformed`` (the
    image on the working grid, (X, Y, Z) float), gives ``dice_estimate`` (:func:`qc.estimator.estimate_dice`).
    ``qc_pass`` and ``qc_threshold`` follow the estimator when there is one, else the autoencoder;
    ``qc_score`` names which. UserError when the bundle has neither network.
    """
    from singlestrip_bids.io.conform import conform_mask

    estimator = bundle.dice_estimator if conformed is not None else None
    if bundle.qc_ae is None and estimator is None:
        raise UserError(f"model bundle {bundle.path} has no QC network (train one at the group level)")
    mask = conform_mask(mask_native_img, bundle.voxel_size, bundle.size_multiple)
    stats = {}
    if bundle.qc_ae is not None:
        from singlestrip_bids.qc.autoencoder import ae_dice

        stats["ae_dice"] = round(ae_dice(bundle.qc_ae, mask), 4)
    if estimator is not None:
        from singlestrip_bids.qc.estimator import estimate_dice

        stats["dice_estimate"] = round(estimate_dice(estimator, conformed, mask,
                                                     head_margin_voxels=bundle.head_margin_voxels,
                                                     size_multiple=bundle.size_multiple), 4)
        threshold, score = float(estimator.config["qc_threshold"]), "dice_estimate"
    else:
        threshold, score = qc_threshold(bundle.qc_ae), "ae_dice"
    return {**stats, "qc_score": score, "qc_pass": bool(stats[score] >= threshold), "qc_threshold": threshold}
