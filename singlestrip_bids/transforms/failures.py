"""Realistic failures of a brain mask, to teach the Dice estimator what wrong masks look like.

Each failure is a deterministic ``<X>`` (frozen parameters, replayable, ``params()`` logs it) and a
``Random<X>`` that draws it from one seeded generator. A failure maps ``(mask, image, voxel_mm)`` to
a candidate mask: ``mask`` a float (X, Y, Z) tensor of 0/1 on the working grid, ``image`` the
normalised image on the same grid, ``voxel_mm`` the working voxel size. Sizes are in mm, so one
failure means the same on a mouse and on a human grid.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from singlestrip_bids.transforms.ranges import Params, as_range, draw_seed
from singlestrip_bids.transforms.sampling import coarse_shape, smooth_field, warp
from singlestrip_bids.transforms.spatial import Rotation, Shift, compose

TISSUE_LEVEL = 0.1  #: normalised intensity above which a voxel is tissue a leak can take in


def _grow(mask: torch.Tensor, voxels: int) -> torch.Tensor:
    """Dilate (``voxels`` > 0) or erode (< 0) by that many 3×3×3 steps."""
    out = mask[None, None]
    for _ in range(abs(voxels)):
        out = F.max_pool3d(out, 3, 1, 1) if voxels > 0 else -F.max_pool3d(-out, 3, 1, 1)
    return out[0, 0]


def _ball(shape, centre, radius_vox: float, device) -> torch.Tensor:
    axes = [torch.arange(s, dtype=torch.float32, device=device) - float(c) for s, c in zip(shape, centre)]
    grids = torch.meshgrid(*axes, indexing="ij")
    return ((grids[0] ** 2 + grids[1] ** 2 + grids[2] ** 2) <= radius_vox**2).float()


def _centre(mask: torch.Tensor) -> np.ndarray:
    cells = torch.nonzero(mask > 0.5).float()
    return (cells.mean(dim=0) if len(cells) else torch.tensor(mask.shape, dtype=torch.float32) / 2).cpu().numpy()


@dataclass(frozen=True)
class BoundaryShift(Params):
    """Move the whole boundary out (``mm`` > 0, a dilation) or in (< 0, an erosion)."""

    mm: float

    def __call__(self, mask, image, voxel_mm):
        return _grow(mask, int(round(self.mm / voxel_mm)))


@dataclass(frozen=True)
class RandomBoundaryShift:
    mm: tuple = (-10.0, 10.0)

    def __call__(self, rng) -> BoundaryShift:
        return BoundaryShift(float(rng.uniform(*as_range(self.mm))))


@dataclass(frozen=True)
class RigidMove(Params):
    """The mask rotated by ``degrees`` (3 angles) about its centre and shifted by ``shift_mm``."""

    degrees: tuple
    shift_mm: tuple

    def __call__(self, mask, image, voxel_mm):
        centre = np.eye(4)
        centre[:3, 3] = _centre(mask) * voxel_mm
        to_mm = np.diag([voxel_mm] * 3 + [1.0])
        moved = centre @ compose([Rotation(self.degrees), Shift(self.shift_mm)]) @ np.linalg.inv(centre)
        index_map = np.linalg.inv(to_mm) @ np.linalg.inv(moved) @ to_mm  # output voxel → input voxel
        return (warp(mask, index_map, mask.shape) > 0.5).float()


@dataclass(frozen=True)
class RandomRigidMove:
    degrees: float = 10.0
    shift_mm: float = 10.0

    def __call__(self, rng) -> RigidMove:
        return RigidMove(tuple(float(a) for a in rng.uniform(*as_range(self.degrees), 3)),
                         tuple(float(s) for s in rng.uniform(*as_range(self.shift_mm), 3)))


@dataclass(frozen=True)
class MissingSlab(Params):
    """A slab ``thickness_mm`` thick across ``axis`` cut out, at ``position`` (0–1) of the mask's extent."""

    axis: int
    position: float
    thickness_mm: float

    def __call__(self, mask, image, voxel_mm):
        cells = torch.nonzero(mask > 0.5)
        if not len(cells):
            return mask
        low, high = int(cells[:, self.axis].min()), int(cells[:, self.axis].max())
        start = int(round(low + self.position * (high - low)))
        stop = start + max(1, int(round(self.thickness_mm / voxel_mm)))
        out = mask.clone()
        index = [slice(None)] * 3
        index[self.axis] = slice(start, stop)
        out[tuple(index)] = 0
        return out


@dataclass(frozen=True)
class RandomMissingSlab:
    thickness_mm: tuple = (5.0, 40.0)

    def __call__(self, rng) -> MissingSlab:
        return MissingSlab(int(rng.integers(3)), float(rng.uniform()), float(rng.uniform(*self.thickness_mm)))


@dataclass(frozen=True)
class Leak(Params):
    """Tissue outside the brain taken in: a ball of ``radius_mm`` centred half a radius beyond the
    boundary in ``direction`` (a unit vector), limited to voxels brighter than ``TISSUE_LEVEL``
    (skull, scalp, neck, eyes)."""

    direction: tuple
    radius_mm: float

    def __call__(self, mask, image, voxel_mm):
        centre = _centre(mask)
        direction = np.asarray(self.direction, dtype=float)
        cells = torch.nonzero(mask > 0.5).float().cpu().numpy()
        reach = float(((cells - centre) @ direction).max()) if len(cells) else 0.0
        radius = self.radius_mm / voxel_mm
        ball = _ball(mask.shape, centre + (reach + radius / 2) * direction, radius, mask.device)
        return torch.maximum(mask, ball * (image > TISSUE_LEVEL).float())


@dataclass(frozen=True)
class RandomLeak:
    radius_mm: tuple = (15.0, 50.0)

    def __call__(self, rng) -> Leak:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction) + 1e-9
        return Leak(tuple(float(d) for d in direction), float(rng.uniform(*self.radius_mm)))


@dataclass(frozen=True)
class Holes(Params):
    """Balls of ``radius_mm`` removed at ``positions`` (fractions 0–1 of the mask's bounding box)."""

    positions: tuple
    radius_mm: float

    def __call__(self, mask, image, voxel_mm):
        cells = torch.nonzero(mask > 0.5).float().cpu().numpy()
        if not len(cells):
            return mask
        low, high = cells.min(axis=0), cells.max(axis=0)
        out = mask.clone()
        for fraction in self.positions:
            centre = low + np.asarray(fraction) * (high - low)
            out = out * (1 - _ball(mask.shape, centre, self.radius_mm / voxel_mm, mask.device))
        return out


@dataclass(frozen=True)
class RandomHoles:
    count: tuple = (1, 4)
    radius_mm: tuple = (8.0, 25.0)

    def __call__(self, rng) -> Holes:
        count = int(rng.integers(self.count[0], self.count[1] + 1))
        positions = tuple(tuple(float(v) for v in rng.uniform(0.2, 0.8, 3)) for _ in range(count))
        return Holes(positions, float(rng.uniform(*self.radius_mm)))


@dataclass(frozen=True)
class BoundaryWarp(Params):
    """The boundary pushed in and out by a smooth random field: ``amplitude`` (of the 0–1 mask
    smoothed over ~2 voxels) with control points every ``spacing_mm``."""

    seed: int
    amplitude: float
    spacing_mm: float

    def __call__(self, mask, image, voxel_mm):
        smoothed = F.avg_pool3d(mask[None, None], 5, 1, 2)[0, 0]
        coarse = coarse_shape(mask.shape, max(self.spacing_mm / voxel_mm, 1.0))
        field = smooth_field(self.seed, self.amplitude, 1, coarse, mask.shape, mask.device)[0, 0]
        return ((smoothed + field) > 0.5).float()


@dataclass(frozen=True)
class RandomBoundaryWarp:
    amplitude: tuple = (0.1, 0.5)
    spacing_mm: tuple = (10.0, 40.0)

    def __call__(self, rng) -> BoundaryWarp:
        return BoundaryWarp(draw_seed(rng), float(rng.uniform(*self.amplitude)), float(rng.uniform(*self.spacing_mm)))


@dataclass(frozen=True)
class RandomFailures:
    """Up to two failures of different kinds; none with ``perfect_probability`` (the true mask)."""

    perfect_probability: float = 0.15
    two_probability: float = 0.35
    kinds: tuple = (RandomBoundaryShift(), RandomRigidMove(), RandomMissingSlab(), RandomLeak(), RandomHoles(),
                    RandomBoundaryWarp())

    def __call__(self, rng) -> list:
        if rng.uniform() < self.perfect_probability:
            return []
        count = 2 if rng.uniform() < self.two_probability else 1
        return [self.kinds[int(i)](rng) for i in rng.choice(len(self.kinds), count, replace=False)]


def apply_failures(failures, mask, image, voxel_mm):
    """``mask`` after each failure of ``failures`` in turn."""
    for failure in failures:
        mask = failure(mask, image, voxel_mm)
    return mask


@dataclass(frozen=True)
class ThresholdedPrediction(Params):
    """A network's P(brain) cut at ``level``: the masks of an uncertain or under-trained model."""

    level: float

    def __call__(self, probability: torch.Tensor) -> torch.Tensor:
        return (probability > self.level).float()


@dataclass(frozen=True)
class RandomThresholdedPrediction:
    level: tuple = (0.05, 0.95)

    def __call__(self, rng) -> ThresholdedPrediction:
        return ThresholdedPrediction(float(rng.uniform(*self.level)))
