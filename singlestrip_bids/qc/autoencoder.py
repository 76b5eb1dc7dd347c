"""Brain-mask autoencoders (AE-QC) and the AE score of a mask (METHOD.md §4).

The autoencoder sees a mask through a fixed *box*: ``size``³ voxels of ``spacing_mm`` mm, centred on
the mask's centroid in the working grid (2D: 64³ at 3 mm = 192 mm, read as 64 axial 64×64 slices;
3D: 48³ at 4 mm = 192 mm). These sizes keep training on two CPU cores to a few minutes. A mask that
reconstructs well looks like a plausible (rotated, scaled, shifted, flipped) version of the one
labeled mask the autoencoder was trained on.

Architecture (after Galati & Zuluaga): per width in ``channels`` a 4×4 stride-2 convolution and a 3×3
stride-1 convolution, each with BatchNorm, LeakyReLU 0.2 and dropout; a last convolution over the
remaining field of view to a latent vector of ``latent`` channels (the bottleneck that makes it a
shape prior); the decoder mirrors it with transposed convolutions.
"""

import numpy as np

from singlestrip_bids.qc.augment import (
    RandomFlip, RandomRotation, RandomScaling, RandomShift, centred_index_map, compose, warp,
)

# qc_threshold: AE scores below it flag a mask (chosen from benchmarks/qc_eval.py, see docs/qc.md).
DEFAULTS = {
    "2d": {"size": 64, "spacing_mm": 3.0, "channels": [32, 64, 128], "latent": 100, "dropout": 0.1,
           "qc_threshold": 0.92},
    "3d": {"size": 48, "spacing_mm": 4.0, "channels": [16, 32, 64], "latent": 100, "dropout": 0.1,
           "qc_threshold": 0.9},
}
AUGMENTATION = {"rotation_deg": 30.0, "scaling": [0.7, 1.4], "shift_mm": 10.0, "flip_axes": [0]}


def default_config(kind: str = "2d", working_voxel_size: float = 2.0) -> dict:
    """The JSON-able config of an untrained autoencoder of ``kind`` ("2d" or "3d")."""
    if kind not in DEFAULTS:
        raise ValueError(f"unknown autoencoder kind {kind!r} (use 2d or 3d)")
    return {"kind": kind, "working_voxel_size": float(working_voxel_size), **DEFAULTS[kind]}


def build_autoencoder(config: dict):
    """An untrained autoencoder from its config; the module keeps the config as ``.config``."""
    from torch import nn

    kind = config["kind"]
    if kind not in DEFAULTS:
        raise ValueError(f"unknown autoencoder kind {kind!r} (use 2d or 3d)")
    conv, deconv, norm, drop = {
        "2d": (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.Dropout2d),
        "3d": (nn.Conv3d, nn.ConvTranspose3d, nn.BatchNorm3d, nn.Dropout3d),
    }[kind]
    if config["size"] % 2 ** len(config["channels"]):
        raise ValueError("autoencoder box size must be a multiple of 2**len(channels)")

    def unit(layer, width):
        return [layer, norm(width), nn.LeakyReLU(0.2), drop(config["dropout"])]

    encoder, decoder = [], []
    in_ch = 1
    for width in config["channels"]:
        encoder += unit(conv(in_ch, width, 4, stride=2, padding=1), width)
        encoder += unit(conv(width, width, 3, padding=1), width)
        in_ch = width
    # The latent is a vector: one convolution over the whole remaining field of view.
    bottom = config["size"] // 2 ** len(config["channels"])
    encoder.append(conv(in_ch, config["latent"], bottom))
    decoder += unit(deconv(config["latent"], in_ch, bottom), in_ch)
    for width in config["channels"][::-1][1:]:
        decoder += unit(conv(in_ch, in_ch, 3, padding=1), in_ch)
        decoder += unit(deconv(in_ch, width, 4, stride=2, padding=1), width)
        in_ch = width
    decoder += unit(conv(in_ch, in_ch, 3, padding=1), in_ch)
    decoder += [deconv(in_ch, 1, 4, stride=2, padding=1), nn.Sigmoid()]
    model = nn.Sequential(nn.Sequential(*encoder), nn.Sequential(*decoder))
    model.config = dict(config)
    return model


def box_index_map(centroid, config: dict, matrix_mm: np.ndarray | None = None) -> np.ndarray:
    """Index map (for :func:`qc.augment.warp`) from box voxels to working-grid voxels.

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


class RandomBoxAugmentation:
    """Rotation, scaling, centre shift and flip of a mask, each drawn by its ``Random<X>``."""

    def __init__(self, rotation_deg=30.0, scaling=(0.7, 1.4), shift_mm=10.0, flip_axes=(0,)):
        self.transforms = [RandomFlip(flip_axes), RandomScaling(scaling), RandomRotation(rotation_deg),
                           RandomShift(shift_mm)]

    def __call__(self, rng: np.random.Generator) -> list:
        """The drawn deterministic transforms, in the order they apply."""
        return [sample(rng) for sample in self.transforms]


def _training_batch(mask, centroid, config, augmentation, rng, batch_size):
    """(B, 1, S, S) axial slices or (B, 1, S, S, S) boxes of randomly transformed masks.

    ``mask``: float tensor (X, Y, Z) on the training device; ``centroid``: its centroid (voxels).
    """
    import torch

    size = config["size"]
    items = []
    for _ in range(batch_size):
        index_map = box_index_map(centroid, config, compose(augmentation(rng)))
        if config["kind"] == "2d":
            # Only the drawn slice is resampled: shift the box's z index to it.
            slice_map = np.eye(4)
            slice_map[2, 3] = rng.integers(size)
            items.append(warp(mask, index_map @ slice_map, (size, size, 1))[..., 0])
        else:
            items.append(warp(mask, index_map, (size,) * 3))
    return (torch.stack(items)[:, None] > 0.5).float()


def train_autoencoder(mask_working: np.ndarray, *, kind: str = "2d", steps: int = 1500, seed: int = 0,
                      device="auto", voxel_size: float = 2.0, batch_size: int = 8, architecture=None,
                      on_step=None):
    """Train an autoencoder on one labeled mask (working grid, ``voxel_size`` mm) with augmentation.

    Loss: soft Dice over the batch + MSE; Adam, learning rate 1e-3, weight decay 1e-5.
    ``architecture`` overrides entries of ``DEFAULTS[kind]`` (e.g. a smaller ``size``);
    ``on_step(step, loss)`` is called after every step. Returns ``(model, config)``, the model on
    the CPU in eval mode.
    """
    import torch

    from singlestrip_bids.model.device import resolve_device
    from singlestrip_bids.model.loss import soft_dice_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = resolve_device(device) if isinstance(device, str) else device
    config = {**default_config(kind, voxel_size), **(architecture or {}), "augmentation": AUGMENTATION,
              "training": {"steps": int(steps), "batch_size": int(batch_size), "seed": int(seed),
                           "learning_rate": 1e-3, "weight_decay": 1e-5, "loss": "soft Dice + MSE"}}
    augmentation = RandomBoxAugmentation(AUGMENTATION["rotation_deg"], AUGMENTATION["scaling"],
                                         AUGMENTATION["shift_mm"], AUGMENTATION["flip_axes"])
    binary = np.asarray(mask_working) > 0.5
    if not binary.any():
        raise ValueError("cannot train a mask autoencoder on an empty mask")
    centroid = np.argwhere(binary).mean(axis=0)
    mask = torch.as_tensor(binary, dtype=torch.float32, device=device)
    model = build_autoencoder(config).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    for step in range(steps):
        batch = _training_batch(mask, centroid, config, augmentation, rng, batch_size)
        output = model(batch)
        # One soft Dice over the whole batch: empty slices have no Dice of their own.
        loss = soft_dice_loss(output.reshape(1, -1), batch.reshape(1, -1)) + torch.mean((output - batch) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(step, loss.item())
    return model.cpu().eval(), config
