"""Training the QC autoencoder on the one labeled mask, with random rotation, scaling, shift and flip."""

import numpy as np

from singlestrip_bids.model.autoencoder import build_autoencoder, default_config
from singlestrip_bids.qc.autoencoder import box_index_map
from singlestrip_bids.transforms.sampling import warp
from singlestrip_bids.transforms.spatial import RandomFlip, RandomRotation, RandomScaling, RandomShift, compose

AUGMENTATION = {"rotation_deg": 30.0, "scaling": [0.7, 1.4], "shift_mm": 10.0, "flip_axes": [0]}


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
                      augmentation=None, on_step=None, precision: str = "auto"):
    """Train an autoencoder on one labeled mask (working grid, ``voxel_size`` mm) with augmentation.

    Loss: soft Dice over the batch + MSE; Adam, learning rate 1e-3, weight decay 1e-5.
    ``architecture`` overrides entries of ``DEFAULTS[kind]`` (e.g. a smaller ``size``) and
    ``augmentation`` those of ``AUGMENTATION`` (e.g. ``shift_mm`` for a small brain);
    ``on_step(step, loss)`` is called after every step. Returns ``(model, config)``, the model on
    the CPU in eval mode. Trained by ``training.loop.Trainer`` (``precision`` as there).
    """
    import torch

    from singlestrip_bids.model.device import resolve_device
    from singlestrip_bids.model.loss import soft_dice_loss
    from singlestrip_bids.seeding import seed_everything
    from singlestrip_bids.training.loop import ProgressHook, Trainer

    seed_everything(seed)
    rng = np.random.default_rng(seed)
    device = resolve_device(device) if isinstance(device, str) else device
    ranges = {**AUGMENTATION, **(augmentation or {})}
    config = {**default_config(kind, voxel_size), **(architecture or {}), "augmentation": ranges,
              "training": {"steps": int(steps), "batch_size": int(batch_size), "seed": int(seed),
                           "learning_rate": 1e-3, "weight_decay": 1e-5, "loss": "soft Dice + MSE"}}
    random_box = RandomBoxAugmentation(ranges["rotation_deg"], ranges["scaling"], ranges["shift_mm"],
                                       ranges["flip_axes"])
    binary = np.asarray(mask_working) > 0.5
    if not binary.any():
        raise ValueError("cannot train a mask autoencoder on an empty mask")
    centroid = np.argwhere(binary).mean(axis=0)
    mask = torch.as_tensor(binary, dtype=torch.float32, device=device)
    model = build_autoencoder(config)

    def reconstruction_loss(output, batch):
        # One soft Dice over the whole batch: empty slices have no Dice of their own.
        return soft_dice_loss(output.reshape(1, -1), batch.reshape(1, -1)) + torch.mean((output - batch) ** 2)

    def batches(size):
        batch = _training_batch(mask, centroid, config, random_box, rng, size)
        return batch, batch

    hooks = [ProgressHook(50, "QC autoencoder")] + ([] if on_step is None else [_Callback(on_step)])
    Trainer(model, batches, steps=steps, batch_size=batch_size, lr=1e-3, weight_decay=1e-5, device=device,
            hooks=hooks, loss=reconstruction_loss, precision=precision).run()
    return model.cpu().eval(), config


class _Callback:
    """A training hook calling ``on_step(step, loss)`` (0-based step)."""

    def __init__(self, on_step):
        self.on_step = on_step

    def after_step(self, trainer, step, loss):
        self.on_step(step - 1, loss)
