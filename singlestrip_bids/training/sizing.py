"""Group-level sizes derived from the labeled example: nothing in them assumes a human head.

Every size the group level used to fix for an adult head is a multiple of the labeled brain's
largest extent, so a mouse, a fetus or an adult are all framed alike: the working voxel is the
brain's extent over :data:`BRAIN_VOXELS` (never finer than the image's finest spacing, and coarse
enough that the field of view spans at most :data:`FOV_VOXELS`), and the training patches,
translation range, inference margin and QC-autoencoder box follow in working voxels. In a field
of view much wider than the brain (a fetus in its mother's abdomen) the translation grows up to
the brain's extent, so that patches show more of what the network is shown at inference. An adult
FreeSurfer head (brain 182 mm across, 256 mm field of view) gets exactly the sizes the shipped
model was trained with: 3 mm, patches 64-112, translation 30, margin 36 mm, AE box 64.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

BRAIN_VOXELS = 60  #: working voxels across the brain's largest extent
#: at most this many working voxels across the field of view: inference shows the network the whole
#: tissue box, which training patches must be able to match
FOV_VOXELS = 160
PATCH_SIZES = 4  #: drawn patch sizes, 16 voxels apart, from the brain's size up
AE_SHIFT_VOXELS = 10 / 3  #: the autoencoder's random centre shift (10 mm at 3 mm)
AE_3D_SPACING = 4 / 3  #: the 3D autoencoder's box spacing, in working voxels


@dataclass(frozen=True)
class Sizing:
    """Sizes of one group run; ``voxel_size`` and ``head_margin_mm`` in mm, the rest in voxels."""

    voxel_size: float
    patch_sizes: tuple
    translation: float  #: synthesis translation range (working voxels)
    head_margin_mm: float
    ae_size: int  #: 2D autoencoder box: ``ae_size`` slices of ``ae_size``² working voxels
    brain_extent_mm: float  #: what the sizes were derived from
    field_of_view_mm: float

    def to_dict(self) -> dict:
        return asdict(self)

    def ae_architecture(self, kind: str) -> dict:
        """Overrides of ``qc.autoencoder.DEFAULTS[kind]``: the box in mm follows the brain."""
        if kind == "2d":
            return {"size": self.ae_size, "spacing_mm": self.voxel_size}
        return {"spacing_mm": round(self.voxel_size * AE_3D_SPACING, 4)}

    @property
    def ae_shift_mm(self) -> float:
        return round(self.voxel_size * AE_SHIFT_VOXELS, 4)


def _world_extent(shape, affine, low, high) -> np.ndarray:
    """Extent (mm, per world axis) of the voxel index box [low, high] (corners ±0.5)."""
    corners = np.array([[i, j, k, 1.0] for i in (low[0] - 0.5, high[0] + 0.5) for j in (low[1] - 0.5, high[1] + 0.5)
                        for k in (low[2] - 0.5, high[2] + 0.5)])
    world = (np.asarray(affine, dtype=float) @ corners.T)[:3]
    return world.max(axis=1) - world.min(axis=1)


def _round_up(value: float, multiple: int) -> int:
    return int(multiple * math.ceil(value / multiple - 1e-9))


def derive_sizing(mask_img, *, voxel_size: float | None = None, multiple: int = 16) -> Sizing:
    """Sizes for a labeled example whose brain mask is ``mask_img`` (on the image's grid).

    ``voxel_size``: an explicit working voxel size (mm) that wins over the derived one; the other
    sizes then follow it. ``multiple``: patch sizes are multiples of it (the U-Net's pooling).
    """
    mask = np.asanyarray(mask_img.dataobj) > 0
    present = np.argwhere(mask)
    if present.size == 0:
        raise ValueError("cannot size the group level from an empty mask")
    shape = mask.shape[:3]
    brain_mm = float(_world_extent(shape, mask_img.affine, present.min(axis=0), present.max(axis=0)).max())
    fov_mm = float(_world_extent(shape, mask_img.affine, (0, 0, 0), np.array(shape) - 1).max())
    finest = float(np.sqrt((np.asarray(mask_img.affine)[:3, :3] ** 2).sum(axis=0)).min())
    if voxel_size is None:
        voxel_size = max(finest, float(f"{brain_mm / BRAIN_VOXELS:.2g}"), float(f"{fov_mm / FOV_VOXELS:.2g}"))
    brain_voxels, fov_voxels = brain_mm / voxel_size, fov_mm / voxel_size
    # The U-Net's coarsest level needs 2 voxels a side (instance norm over more than one value).
    smallest = max(_round_up(brain_voxels, multiple), 2 * multiple)
    largest = min(smallest + multiple * (PATCH_SIZES - 1), _round_up(fov_voxels, multiple) + multiple)
    patches = tuple(range(smallest, max(smallest, largest) + 1, multiple))
    # Patches travel over more of a wide field of view, but never so far that most miss the brain
    # (a patch without brain gives the soft Dice nothing to learn from).
    translation = max(round(brain_voxels / 2), min(round((fov_voxels - smallest) / 2), round(brain_voxels)))
    return Sizing(voxel_size=float(voxel_size), patch_sizes=patches, translation=float(translation),
                  head_margin_mm=round(round(brain_voxels / 5) * voxel_size, 4), ae_size=smallest,
                  brain_extent_mm=round(brain_mm, 2), field_of_view_mm=round(fov_mm, 2))


def apply_sizing(config, sizing: Sizing):
    """``config`` (a ``training.sl1.TrainingConfig``) with the working grid, patches and margin of ``sizing``."""
    from dataclasses import replace

    synthesis = config.synthesis
    synthesis = replace(synthesis, patch_sizes=sizing.patch_sizes,
                        spatial=replace(synthesis.spatial, translation=sizing.translation))
    return replace(config, voxel_size=sizing.voxel_size, head_margin_mm=sizing.head_margin_mm, synthesis=synthesis)
