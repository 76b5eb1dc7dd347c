"""What a scan shows around the brain: thick slices, a cropped field of view, clutter in the air."""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from singlestrip_bids.transforms.ranges import as_range, draw_seed
from singlestrip_bids.transforms.sampling import coarse_shape, smooth_field


@dataclass(frozen=True)
class ThickSlices:
    """Average blocks of ``factor`` voxels along ``axis`` and interpolate back (factor 1: identity)."""

    axis: int = 2
    factor: float = 1.0

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.factor <= 1.0:
            return image
        shape = list(image.shape[-3:])
        low = list(shape)
        low[self.axis] = max(1, int(round(shape[self.axis] / self.factor)))
        down = F.interpolate(image[None], size=tuple(low), mode="area")
        return F.interpolate(down, size=tuple(shape), mode="trilinear", align_corners=False)[0]


@dataclass(frozen=True)
class RandomThickSlices:
    probability: float = 0.3
    factor: tuple = (1.0, 3.0)

    def __call__(self, rng) -> ThickSlices:
        if rng.uniform() >= self.probability:
            return ThickSlices(int(rng.integers(0, 3)), 1.0)
        return ThickSlices(int(rng.integers(0, 3)), float(rng.uniform(*as_range(self.factor))))


@dataclass(frozen=True)
class FieldOfView:
    """Keep only voxels within [low, high) fractions of each axis; the rest becomes 0."""

    low: tuple = (0.0, 0.0, 0.0)
    high: tuple = (1.0, 1.0, 1.0)

    def __call__(self, volume: torch.Tensor) -> torch.Tensor:
        keep = torch.ones(volume.shape[-3:], dtype=torch.bool, device=volume.device)
        for axis, (lo, hi) in enumerate(zip(self.low, self.high)):
            size = volume.shape[-3 + axis]
            index = torch.arange(size, device=volume.device)
            inside = (index >= int(lo * size)) & (index < int(math.ceil(hi * size)))
            shape = [1, 1, 1]
            shape[axis] = size
            keep &= inside.view(shape)
        return volume * keep


@dataclass(frozen=True)
class RandomFieldOfView:
    """With ``probability``, crop up to ``max_fraction`` of each axis from each side."""

    probability: float = 0.3
    max_fraction: float = 0.2

    def __call__(self, rng) -> FieldOfView:
        if rng.uniform() >= self.probability:
            return FieldOfView()
        low = tuple(float(v) for v in rng.uniform(0, self.max_fraction, 3))
        high = tuple(float(1 - v) for v in rng.uniform(0, self.max_fraction, 3))
        return FieldOfView(low, high)


@dataclass(frozen=True)
class AirClutter:
    """Air (class 0) outside the brain mask filled with smooth random shapes of ``classes``.

    A defaced labeled example shows air where real heads have orbits and sinuses, right under the
    frontal lobes. The shapes are the argmax of ``len(classes)`` smooth random fields (control
    points every ``spacing`` voxels, regenerated from ``seed``); no classes: identity. The mask is
    never changed.
    """

    classes: tuple = ()
    seed: int = 0
    spacing: float = 4.0

    def __call__(self, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``labels`` (1, X, Y, Z) with its air outside ``mask`` (1, X, Y, Z) replaced."""
        if not self.classes:
            return labels
        shape = labels.shape[-3:]
        fields = smooth_field(self.seed, 1.0, len(self.classes), coarse_shape(shape, self.spacing), shape,
                              labels.device)[0]
        shapes = torch.tensor(self.classes, dtype=labels.dtype, device=labels.device)[fields.argmax(0)]
        air = (labels[0] == 0) & (mask[0] == 0)
        return torch.where(air, shapes, labels[0])[None]


@dataclass(frozen=True)
class RandomAirClutter:
    """With ``probability``, air clutter of class 0 plus ``count`` other classes drawn at random
    (fewer where the class map has fewer)."""

    probability: float = 0.5
    count: tuple = (1, 6)
    spacing: float = 4.0

    def __call__(self, rng: np.random.Generator, n_classes: int) -> AirClutter:
        if rng.uniform() >= self.probability:
            return AirClutter()
        low, high = as_range(self.count)
        count = min(int(rng.integers(int(low), int(high) + 1)), n_classes - 1)
        others = rng.choice(np.arange(1, n_classes), count, replace=False)
        return AirClutter((0, *(int(c) for c in others)), draw_seed(rng), self.spacing)
