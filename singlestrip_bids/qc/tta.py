"""Test-time augmentation agreement (TTA-QC, METHOD.md §5), the baseline QC score.

Copies of the conformed image are scaled in intensity and rotated about the centre of the working
grid, predicted, and rotated back; the voxel-wise median of the copies' masks is the pseudo-label and
the score is the mean Dice of the copies against it (0 when the pseudo-label is empty). Note that
the network's (x − min)/(p99 − min) normalisation cancels a global intensity factor, so the
rotations carry the disagreement.
"""

import numpy as np

from singlestrip_bids.metrics import dice
from singlestrip_bids.transforms.intensity import RandomIntensityScaling
from singlestrip_bids.transforms.sampling import centred_index_map, warp
from singlestrip_bids.transforms.spatial import RandomRotation


def tta_agreement(predictor, data: np.ndarray, *, copies: int = 10, intensity: float = 0.2,
                  rotation_deg: float = 30.0, seed: int = 0) -> dict:
    """TTA score of one conformed image (float32 (X, Y, Z) on the working grid).

    ``predictor`` has ``predict_probability(data) -> P(brain)`` (inference.predict.Predictor).
    Returns ``{"tta_dice": float in [0, 1], "pseudo_label": bool (X, Y, Z), "draws": [params, ...]}``.
    """
    import torch

    rng = np.random.default_rng(seed)
    random_intensity, random_rotation = RandomIntensityScaling(intensity), RandomRotation(rotation_deg)
    shape = data.shape
    centre = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    masks, draws = [], []
    for _ in range(copies):
        scaling, rotation = random_intensity(rng), random_rotation(rng)
        draws.append({**scaling.params(), **rotation.params()})
        forward = centred_index_map(rotation.matrix(), shape, 1.0, centre, 1.0)
        backward = centred_index_map(np.linalg.inv(rotation.matrix()), shape, 1.0, centre, 1.0)
        rotated = warp(torch.as_tensor(scaling(data)), forward, shape).numpy()
        probability = predictor.predict_probability(rotated)
        masks.append(warp(torch.as_tensor(probability), backward, shape).numpy() > 0.5)
    # The median of binary votes is the majority (a 5–5 tie counts as background).
    pseudo_label = np.stack(masks).mean(axis=0) > 0.5
    if not pseudo_label.any():
        return {"tta_dice": 0.0, "pseudo_label": pseudo_label, "draws": draws}
    score = float(np.mean([dice(mask, pseudo_label) for mask in masks]))
    return {"tta_dice": score, "pseudo_label": pseudo_label, "draws": draws}
