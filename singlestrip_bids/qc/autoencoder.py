"""The AE score of a mask: its reconstruction by the mask autoencoder (``model.autoencoder``).

The autoencoder sees a mask through a fixed *box*: ``size``³ voxels of ``spacing_mm`` mm, centred on
the mask's centroid in the working grid (2D: 64³ at 3 mm = 192 mm, read as 64 axial 64×64 slices;
3D: 48³ at 4 mm = 192 mm). These sizes keep training on two CPU cores to a few minutes. A mask that
reconstructs well looks like a plausible (rotated, scaled, shifted, flipped) version of the one
labeled mask the autoencoder was trained on.
"""

import numpy as np

from singlestrip_bids.transforms.sampling import centred_index_map, warp


def box_index_map(centroid, config: dict, matrix_mm: np.ndarray | None = None) -> np.ndarray:
    """Index map (for :func:`transforms.sampling.warp`) from box voxels to working-grid voxels.

    The box is centred on ``centroid`` (working voxel indices, the mask's centroid); ``matrix_mm``
    (4×4, mm) transforms the mask about it.
    """
    matrix = np.eye(4) if matrix_mm is None else matrix_mm
    size = (config["size"],) * 3
    return centred_index_map(matrix, size, config["spacing_mm"], centroid, config["working_voxel_size"])


def mask_box(mask_working: np.ndarray, config: dict, matrix_mm: np.ndarray | None = None):
    """The mask resampled into the autoencoder's box: float tensor (size, size, size) of 0/1."""
    import torch

    mask = np.asarray(mask_working, dtype=np.float32)
    index_map = box_index_map(np.argwhere(mask > 0.5).mean(axis=0), config, matrix_mm)
    box = warp(torch.as_tensor(mask), index_map, (config["size"],) * 3)
    return (box > 0.5).float()


def reconstruct(ae, box):
    """Reconstruction probabilities of a box (S, S, S) tensor; the 2D model runs slice by slice (axis 2)."""
    import torch

    device = next(ae.parameters()).device
    with torch.no_grad():
        if ae.config["kind"] == "2d":
            slices = box.permute(2, 0, 1)[:, None].to(device)
            return ae(slices)[:, 0].permute(1, 2, 0).cpu()
        return ae(box[None, None].to(device))[0, 0].cpu()


def ae_dice(ae, mask_working: np.ndarray) -> float:
    """AE score of a binary mask on the working grid: Dice of the box input vs its reconstruction > 0.5.

    Mask voxels that fall outside the box count as missed by the reconstruction, so a mask leaking
    far from the brain scores low. An empty mask scores 0.
    """
    mask_working = np.asarray(mask_working) > 0.5
    if not mask_working.any():
        return 0.0
    ae.eval()
    box = mask_box(mask_working, ae.config)
    recon = reconstruct(ae, box) > 0.5
    inside = box.bool()
    voxel_ratio = (ae.config["working_voxel_size"] / ae.config["spacing_mm"]) ** 3
    outside = max(0.0, float(mask_working.sum()) * voxel_ratio - float(inside.sum()))
    overlap = float((inside & recon).sum())
    return 2.0 * overlap / (float(inside.sum()) + float(recon.sum()) + outside)
