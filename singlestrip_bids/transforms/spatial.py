"""Spatial transforms.

- :class:`SpatialTransform` (synthesis): an affine about the patch centre plus a smooth
  diffeomorphic deformation, in working-grid voxels, applied to a label map and its mask at once.
- :class:`Rotation`, :class:`Scaling`, :class:`Shift`, :class:`Flip` (QC): 4×4 matrices in mm acting
  on points relative to a centre, composed (:func:`compose`) so that a volume is interpolated once
  (``sampling.warp``).
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from singlestrip_bids.transforms.ranges import Params, as_range, draw_seed, torch_generator, uniform3
from singlestrip_bids.transforms.sampling import coarse_shape, identity_grid, sample_volume


def rotation_matrix(degrees) -> np.ndarray:
    """3×3 rotation about the x, then the y, then the z axis by ``degrees`` (3 angles, degrees)."""
    rx, ry, rz = np.deg2rad(degrees)
    rot_x = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    rot_y = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    rot_z = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


# ------------------------------------------------------------------ synthesis (working-grid voxels)
@dataclass(frozen=True)
class SpatialTransform:
    """Affine (about the output centre) followed by a smooth diffeomorphic deformation.

    Maps each output voxel ``o`` to the input position ``centre + A (o − o_c) + translation + u(o)``,
    where ``u`` integrates a stationary velocity field (std ``deformation_std`` voxels on a grid of
    ``deformation_spacing`` voxels) by scaling and squaring.
    """

    rotation_deg: tuple = (0.0, 0.0, 0.0)
    scale: tuple = (1.0, 1.0, 1.0)
    shear: tuple = (0.0, 0.0, 0.0)
    translation: tuple = (0.0, 0.0, 0.0)
    deformation_std: float = 0.0
    deformation_seed: int = 0
    deformation_spacing: float = 8.0
    integration_steps: int = 5

    def matrix(self) -> np.ndarray:
        """3×3 matrix taking output offsets to input offsets (voxels)."""
        shear = np.array([[1, self.shear[0], self.shear[1]], [0, 1, self.shear[2]], [0, 0, 1]])
        return rotation_matrix(self.rotation_deg) @ shear @ np.diag(self.scale)

    def _displacement(self, out_shape, device) -> torch.Tensor:
        """(1, 3, *out_shape) displacement in voxels (zero when the std is zero)."""
        if self.deformation_std == 0:
            return torch.zeros((1, 3, *out_shape), device=device)
        coarse = coarse_shape(out_shape, self.deformation_spacing)
        velocity = torch.randn((1, 3, *coarse), generator=torch_generator(self.deformation_seed, device),
                               device=device) * self.deformation_std
        scale = torch.tensor([(c - 1) / (o - 1) for c, o in zip(coarse, out_shape)], device=device)
        disp = velocity * scale.view(1, 3, 1, 1, 1) / 2**self.integration_steps  # coarse-voxel units
        identity = identity_grid(coarse, device)
        for _ in range(self.integration_steps):
            disp = disp + sample_volume(disp, identity + disp.permute(0, 2, 3, 4, 1), coarse, "bilinear")
        disp = disp / scale.view(1, 3, 1, 1, 1)
        return F.interpolate(disp, size=tuple(out_shape), mode="trilinear", align_corners=True)

    def grid(self, in_shape, out_shape, centre, device) -> torch.Tensor:
        """Input positions (voxels) of every output voxel: (1, X, Y, Z, 3)."""
        offsets = identity_grid(out_shape, device) - torch.tensor(
            [(s - 1) / 2 for s in out_shape], device=device)
        matrix = torch.tensor(self.matrix(), dtype=torch.float32, device=device)
        shift = torch.tensor(np.asarray(centre) + np.asarray(self.translation), dtype=torch.float32, device=device)
        positions = offsets @ matrix.T + shift
        return positions + self._displacement(out_shape, device).permute(0, 2, 3, 4, 1)

    def __call__(self, labels: torch.Tensor, mask: torch.Tensor, out_shape, centre, image=None):
        """Warp a label map (nearest) and a mask (linear, then ≥ 0.5) onto ``out_shape``; with an
        ``image`` (1, X, Y, Z) on their grid, that too (linear, 0 outside), as a third result."""
        positions = self.grid(labels.shape[-3:], out_shape, centre, labels.device)
        warped_labels = sample_volume(labels[None].float(), positions, labels.shape[-3:], "nearest")[0]
        warped_mask = sample_volume(mask[None].float(), positions, mask.shape[-3:], "bilinear")[0]
        warped = warped_labels.round().to(labels.dtype), (warped_mask >= 0.5).float()
        if image is None:
            return warped
        return (*warped, sample_volume(image[None].float(), positions, image.shape[-3:], "bilinear")[0])


@dataclass(frozen=True)
class RandomSpatial:
    """Samples a :class:`SpatialTransform`; translation in voxels, rotation in degrees."""

    rotation_deg: object = 20.0
    scale: object = (0.85, 1.15)
    shear: object = 0.05
    translation: object = 30.0  # voxels: wide enough that patches often show the neck, face and air
    deformation_max_std: float = 2.0
    deformation_spacing: float = 8.0

    def __call__(self, rng: np.random.Generator) -> SpatialTransform:
        return SpatialTransform(
            rotation_deg=uniform3(rng, self.rotation_deg),
            scale=uniform3(rng, self.scale),
            shear=uniform3(rng, self.shear),
            translation=uniform3(rng, self.translation),
            deformation_std=float(rng.uniform(0, self.deformation_max_std)),
            deformation_seed=draw_seed(rng),
            deformation_spacing=self.deformation_spacing,
        )


# ------------------------------------------------------------------------- QC (4×4 matrices, mm)
@dataclass(frozen=True)
class Rotation(Params):
    """Rotation about the x, then y, then z axis by ``degrees`` (3 angles, degrees)."""

    degrees: tuple

    def matrix(self) -> np.ndarray:
        out = np.eye(4)
        out[:3, :3] = rotation_matrix(self.degrees)
        return out


@dataclass(frozen=True)
class Scaling(Params):
    """Isotropic scaling by ``factor`` (> 1 enlarges)."""

    factor: float

    def matrix(self) -> np.ndarray:
        return np.diag([self.factor] * 3 + [1.0])


@dataclass(frozen=True)
class Shift(Params):
    """Translation by ``offset_mm`` (3 values, mm)."""

    offset_mm: tuple

    def matrix(self) -> np.ndarray:
        out = np.eye(4)
        out[:3, 3] = self.offset_mm
        return out


@dataclass(frozen=True)
class Flip(Params):
    """Mirror along each axis whose entry in ``axes`` (3 booleans) is true."""

    axes: tuple

    def matrix(self) -> np.ndarray:
        return np.diag([-1.0 if flip else 1.0 for flip in self.axes] + [1.0])


class RandomRotation:
    """Angles drawn uniformly in ``degrees`` (scalar d → (−d, d)) about each axis in ``axes``."""

    def __init__(self, degrees=30.0, axes=(0, 1, 2)):
        self.range, self.axes = as_range(degrees), tuple(axes)

    def __call__(self, rng: np.random.Generator) -> Rotation:
        angles = rng.uniform(*self.range, size=3)
        return Rotation(tuple(float(a) if i in self.axes else 0.0 for i, a in enumerate(angles)))


class RandomScaling:
    """Factor drawn log-uniformly in ``factors`` = (low, high), both positive."""

    def __init__(self, factors=(0.7, 1.4)):
        self.range = as_range(factors)
        if self.range[0] <= 0:
            raise ValueError("scaling factors must be positive")

    def __call__(self, rng: np.random.Generator) -> Scaling:
        return Scaling(float(np.exp(rng.uniform(*np.log(self.range)))))


class RandomShift:
    """Offsets drawn uniformly in ``max_mm`` (scalar d → (−d, d) mm) per axis."""

    def __init__(self, max_mm=10.0):
        self.range = as_range(max_mm)

    def __call__(self, rng: np.random.Generator) -> Shift:
        return Shift(tuple(float(v) for v in rng.uniform(*self.range, size=3)))


class RandomFlip:
    """Each axis in ``axes`` flipped with probability ``p``."""

    def __init__(self, axes=(0,), p=0.5):
        self.axes, self.p = tuple(axes), float(p)

    def __call__(self, rng: np.random.Generator) -> Flip:
        draws = rng.random(3) < self.p
        return Flip(tuple(bool(draws[i]) and i in self.axes for i in range(3)))


def compose(transforms) -> np.ndarray:
    """4×4 matrix applying ``transforms`` in order (the first one acts first)."""
    out = np.eye(4)
    for transform in transforms:
        out = transform.matrix() @ out
    return out
