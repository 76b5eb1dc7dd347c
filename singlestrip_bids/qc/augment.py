"""Spatial and intensity augmentations for quality control (AE training and TTA).

Each random augmentation is a ``Random<X>`` that samples its parameters from one
``numpy.random.Generator`` and returns the deterministic ``<X>`` holding them; ``<X>.params()``
gives the JSON-able parameters, so any draw can be logged and replayed. Spatial transforms are 4×4
matrices in mm acting on points relative to a centre (the mask centroid or the volume centre); they
are composed into one matrix so that a volume is interpolated only once.
"""

from dataclasses import asdict, dataclass

import numpy as np


def _range(value) -> tuple:
    """A scalar ``d`` means ``(-d, d)``; a pair is taken as ``(low, high)``."""
    if np.isscalar(value):
        return (-float(value), float(value))
    low, high = value
    if low > high:
        raise ValueError(f"invalid range ({low}, {high})")
    return (float(low), float(high))


class _Params:
    def params(self) -> dict:
        return {type(self).__name__: {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}}


@dataclass(frozen=True)
class Rotation(_Params):
    """Rotation about the x, then y, then z axis by ``degrees`` (3 angles, degrees)."""

    degrees: tuple

    def matrix(self) -> np.ndarray:
        out = np.eye(4)
        for axis, angle in enumerate(np.deg2rad(self.degrees)):
            i, j = [a for a in range(3) if a != axis]
            rot = np.eye(4)
            rot[i, i] = rot[j, j] = np.cos(angle)
            rot[i, j], rot[j, i] = -np.sin(angle), np.sin(angle)
            out = rot @ out
        return out


@dataclass(frozen=True)
class Scaling(_Params):
    """Isotropic scaling by ``factor`` (> 1 enlarges)."""

    factor: float

    def matrix(self) -> np.ndarray:
        return np.diag([self.factor] * 3 + [1.0])


@dataclass(frozen=True)
class Shift(_Params):
    """Translation by ``offset_mm`` (3 values, mm)."""

    offset_mm: tuple

    def matrix(self) -> np.ndarray:
        out = np.eye(4)
        out[:3, 3] = self.offset_mm
        return out


@dataclass(frozen=True)
class Flip(_Params):
    """Mirror along each axis whose entry in ``axes`` (3 booleans) is true."""

    axes: tuple

    def matrix(self) -> np.ndarray:
        return np.diag([-1.0 if flip else 1.0 for flip in self.axes] + [1.0])


@dataclass(frozen=True)
class IntensityScaling(_Params):
    """Multiply intensities by ``factor``."""

    factor: float

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return (image * self.factor).astype(np.float32)


class RandomRotation:
    """Angles drawn uniformly in ``degrees`` (scalar d → (−d, d)) about each axis in ``axes``."""

    def __init__(self, degrees=30.0, axes=(0, 1, 2)):
        self.range, self.axes = _range(degrees), tuple(axes)

    def __call__(self, rng: np.random.Generator) -> Rotation:
        angles = rng.uniform(*self.range, size=3)
        return Rotation(tuple(float(a) if i in self.axes else 0.0 for i, a in enumerate(angles)))


class RandomScaling:
    """Factor drawn log-uniformly in ``factors`` = (low, high)."""

    def __init__(self, factors=(0.7, 1.4)):
        self.range = _range(factors)
        if self.range[0] <= 0:
            raise ValueError("scaling factors must be positive")

    def __call__(self, rng: np.random.Generator) -> Scaling:
        return Scaling(float(np.exp(rng.uniform(*np.log(self.range)))))


class RandomShift:
    """Offsets drawn uniformly in ``max_mm`` (scalar d → (−d, d) mm) per axis."""

    def __init__(self, max_mm=10.0):
        self.range = _range(max_mm)

    def __call__(self, rng: np.random.Generator) -> Shift:
        return Shift(tuple(float(v) for v in rng.uniform(*self.range, size=3)))


class RandomFlip:
    """Each axis in ``axes`` flipped with probability ``p``."""

    def __init__(self, axes=(0,), p=0.5):
        self.axes, self.p = tuple(axes), float(p)

    def __call__(self, rng: np.random.Generator) -> Flip:
        draws = rng.random(3) < self.p
        return Flip(tuple(bool(draws[i]) and i in self.axes for i in range(3)))


class RandomIntensityScaling:
    """Factor drawn uniformly in ``1 + fraction`` (scalar f → (1 − f, 1 + f))."""

    def __init__(self, fraction=0.2):
        low, high = _range(fraction)
        self.range = (1.0 + low, 1.0 + high)

    def __call__(self, rng: np.random.Generator) -> IntensityScaling:
        return IntensityScaling(float(rng.uniform(*self.range)))


def compose(transforms) -> np.ndarray:
    """4×4 matrix applying ``transforms`` in order (the first one acts first)."""
    out = np.eye(4)
    for transform in transforms:
        out = transform.matrix() @ out
    return out


def warp(volume, index_map: np.ndarray, out_shape, mode: str = "bilinear"):
    """Resample a volume at the points ``index_map`` sends the output voxels to; outside → 0.

    ``volume``: torch tensor (X, Y, Z); ``index_map``: 4×4 matrix from output voxel indices to input
    voxel indices; ``mode``: ``"bilinear"`` (trilinear) or ``"nearest"``. Returns a float tensor of
    shape ``out_shape`` on the volume's device.
    """
    import torch

    from singlestrip_bids.synthesis.transforms import sample_volume

    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in out_shape], indexing="ij"), -1)
    points = grid @ index_map[:3, :3].T + index_map[:3, 3]
    positions = torch.as_tensor(points[None], dtype=torch.float32, device=volume.device)
    return sample_volume(volume[None, None].float(), positions, volume.shape, mode)[0, 0]


def centred_index_map(matrix_mm: np.ndarray, out_shape, out_spacing: float, centre_in, in_spacing: float):
    """Index map for :func:`warp` that samples a volume transformed by ``matrix_mm``.

    The output grid (``out_shape`` voxels of ``out_spacing`` mm) is centred on ``centre_in`` (input
    voxel indices; input voxels of ``in_spacing`` mm); the content appears transformed by
    ``matrix_mm`` about that centre.
    """
    out_centre = (np.asarray(out_shape, dtype=float) - 1.0) / 2.0
    to_mm = np.diag([out_spacing] * 3 + [1.0])
    to_mm[:3, 3] = -out_spacing * out_centre
    to_input = np.diag([1.0 / in_spacing] * 3 + [1.0])
    to_input[:3, 3] = centre_in
    return to_input @ np.linalg.inv(matrix_mm) @ to_mm
