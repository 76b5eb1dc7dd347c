"""The estimated Dice of a mask: the Dice estimator reads the image and the mask as the U-Net reads images."""

import numpy as np


def estimate_dice(estimator, image_working: np.ndarray, mask_working: np.ndarray, *, head_margin_voxels,
                  size_multiple: int, device="cpu") -> float:
    """Estimated Dice in [0, 1] of ``mask_working`` (bool, working grid) for ``image_working`` (the
    conformed image, raw intensities, same grid), framed by the bundle's head margin and multiple.
    Mask voxels outside the frame count as wrong."""
    import torch

    from singlestrip_bids.inference.predict import framed
    from singlestrip_bids.model.estimator import estimated_dice
    from singlestrip_bids.model.normalize import normalize_intensity

    image, source, target = framed(image_working, head_margin_voxels, size_multiple)
    mask = np.zeros_like(image)
    mask[target] = mask_working[source]
    outside = float(mask_working.sum() - mask.sum())
    with torch.inference_mode():
        x = torch.stack([normalize_intensity(torch.from_numpy(image)), torch.from_numpy(mask)])[None].to(device)
        logits = estimator.to(device).eval()(x).float()
        inside = float(estimated_dice(logits, x[:, 1:])[0])
        if outside <= 0:
            return inside
        outline = float((logits > 0).sum())
        total = outline + float(mask.sum())
        return inside * total / (total + outside)
