"""Synthesis steps: each ``Random<X>`` samples parameters, each ``<X>`` applies them exactly.

A ``Random<X>`` draws from a ``numpy.random.Generator``; dense random fields (deformation, noise,
bias) are described by a ``seed`` in the parameters and regenerated from it with a torch generator,
so a draw is a small JSON-able dict (``dataclasses.asdict``) that replays bit for bit on the same
device. Ranges follow TorchIO: ``(a, b)``, or a scalar ``d`` meaning ``(−d, d)``.

Tensors are (1, X, Y, Z) float32 images on any device; sizes are in working-grid voxels.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def as_range(value, around: float = 0.0) -> tuple:
    """``(a, b)`` stays; a scalar ``d`` becomes ``(around − d, around + d)``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] > value[1]:
            raise ValueError(f"a range must be (low, high) with low <= high, got {value!r}")
        return float(value[0]), float(value[1])
    if not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"a range must be (low, high) or a non-negative scalar, got {value!r}")
    return around - float(value), around + float(value)


def _uniform3(rng: np.random.Generator, value, around: float = 0.0) -> tuple:
    low, high = as_range(value, around)
    return tuple(float(v) for v in rng.uniform(low, high, 3))


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _torch_generator(seed: int, device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def _smooth_field(seed: int, std: float, channels: int, coarse_shape, out_shape, device) -> torch.Tensor:
    """Gaussian noise of ``std`` on a coarse grid, upsampled trilinearly: (1, C, *out_shape)."""
    coarse = torch.randn((1, channels, *coarse_shape), generator=_torch_generator(seed, device), device=device)
    return F.interpolate(coarse * std, size=tuple(out_shape), mode="trilinear", align_corners=True)


def _coarse_shape(shape, spacing_vox: float) -> tuple:
    return tuple(max(2, int(math.ceil(s / spacing_vox)) + 1) for s in shape)


# --------------------------------------------------------------------------------------- spatial
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
        rx, ry, rz = np.deg2rad(self.rotation_deg)
        rot_x = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
        rot_y = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
        rot_z = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
        shear = np.array([[1, self.shear[0], self.shear[1]], [0, 1, self.shear[2]], [0, 0, 1]])
        return rot_z @ rot_y @ rot_x @ shear @ np.diag(self.scale)

    def _displacement(self, out_shape, device) -> torch.Tensor:
        """(1, 3, *out_shape) displacement in voxels (zero when the std is zero)."""
        if self.deformation_std == 0:
            return torch.zeros((1, 3, *out_shape), device=device)
        coarse = _coarse_shape(out_shape, self.deformation_spacing)
        velocity = torch.randn((1, 3, *coarse), generator=_torch_generator(self.deformation_seed, device),
                               device=device) * self.deformation_std
        scale = torch.tensor([(c - 1) / (o - 1) for c, o in zip(coarse, out_shape)], device=device)
        disp = velocity * scale.view(1, 3, 1, 1, 1) / 2**self.integration_steps  # coarse-voxel units
        identity = _identity_grid(coarse, device)
        for _ in range(self.integration_steps):
            disp = disp + sample_volume(disp, identity + disp.permute(0, 2, 3, 4, 1), coarse, "bilinear")
        disp = disp / scale.view(1, 3, 1, 1, 1)
        return F.interpolate(disp, size=tuple(out_shape), mode="trilinear", align_corners=True)

    def grid(self, in_shape, out_shape, centre, device) -> torch.Tensor:
        """Input positions (voxels) of every output voxel: (1, X, Y, Z, 3)."""
        offsets = _identity_grid(out_shape, device) - torch.tensor(
            [(s - 1) / 2 for s in out_shape], device=device)
        matrix = torch.tensor(self.matrix(), dtype=torch.float32, device=device)
        shift = torch.tensor(np.asarray(centre) + np.asarray(self.translation), dtype=torch.float32, device=device)
        positions = offsets @ matrix.T + shift
        return positions + self._displacement(out_shape, device).permute(0, 2, 3, 4, 1)

    def __call__(self, labels: torch.Tensor, mask: torch.Tensor, out_shape, centre):
        """Warp a label map (nearest) and a mask (linear, then ≥ 0.5) onto ``out_shape``."""
        positions = self.grid(labels.shape[-3:], out_shape, centre, labels.device)
        warped_labels = sample_volume(labels[None].float(), positions, labels.shape[-3:], "nearest")[0]
        warped_mask = sample_volume(mask[None].float(), positions, mask.shape[-3:], "bilinear")[0]
        return warped_labels.round().to(labels.dtype), (warped_mask >= 0.5).float()


def _identity_grid(shape, device) -> torch.Tensor:
    axes = [torch.arange(s, dtype=torch.float32, device=device) for s in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)[None]


def sample_volume(volume: torch.Tensor, positions: torch.Tensor, in_shape, mode: str) -> torch.Tensor:
    """Sample (1, C, *in_shape) at voxel ``positions`` (1, X, Y, Z, 3); outside → 0."""
    size = torch.tensor([s - 1 for s in in_shape], dtype=torch.float32, device=positions.device)
    normalised = 2.0 * positions / size.clamp(min=1) - 1.0
    # grid_sample wants (x, y, z) = (last, middle, first) volume axis
    return F.grid_sample(volume, normalised.flip(-1), mode=mode, padding_mode="zeros", align_corners=True)


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
            rotation_deg=_uniform3(rng, self.rotation_deg),
            scale=_uniform3(rng, self.scale),
            shear=_uniform3(rng, self.shear),
            translation=_uniform3(rng, self.translation),
            deformation_std=float(rng.uniform(0, self.deformation_max_std)),
            deformation_seed=_seed(rng),
            deformation_spacing=self.deformation_spacing,
        )


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
        fields = _smooth_field(self.seed, 1.0, len(self.classes), _coarse_shape(shape, self.spacing), shape,
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
        return AirClutter((0, *(int(c) for c in others)), _seed(rng), self.spacing)


# ------------------------------------------------------------------------------------ intensity
@dataclass(frozen=True)
class ClassIntensities:
    """Image from a label map: class ``c`` gets ``means[c] + stds[c] · N(0, 1)`` per voxel."""

    means: tuple
    stds: tuple
    seed: int = 0

    def __call__(self, labels: torch.Tensor) -> torch.Tensor:
        means = torch.tensor(self.means, dtype=torch.float32, device=labels.device)
        stds = torch.tensor(self.stds, dtype=torch.float32, device=labels.device)
        index = labels.long()
        noise = torch.randn(labels.shape, generator=_torch_generator(self.seed, labels.device), device=labels.device)
        return means[index] + stds[index] * noise


@dataclass(frozen=True)
class RandomClassIntensities:
    """Means U[25, 225]/255 and SDs U[5, 25]/255 per class; class 0 (air) black with p = 0.2.

    With ``source_contrast_probability``, a draw keeps ``source_contrast`` instead: the (means,
    SDs) per class that the GMM fitted on the source image, i.e. its own contrast.
    """

    n_classes: int
    mean: tuple = (25 / 255, 225 / 255)
    std: tuple = (5 / 255, 25 / 255)
    background_zero_probability: float = 0.2
    source_contrast: tuple | None = None
    source_contrast_probability: float = 0.0

    def __call__(self, rng: np.random.Generator) -> ClassIntensities:
        if self.source_contrast is not None and rng.uniform() < self.source_contrast_probability:
            means, stds = self.source_contrast
            return ClassIntensities(tuple(means), tuple(stds), _seed(rng))
        means = rng.uniform(*as_range(self.mean), self.n_classes)
        stds = rng.uniform(*as_range(self.std), self.n_classes)
        if rng.uniform() < self.background_zero_probability:
            means[0], stds[0] = 0.0, 0.0
        return ClassIntensities(tuple(means.tolist()), tuple(stds.tolist()), _seed(rng))


@dataclass(frozen=True)
class GaussianNoise:
    """Additive white noise of ``std``."""

    std: float = 0.0
    seed: int = 0

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.std == 0:
            return image
        gen = _torch_generator(self.seed, image.device)
        return image + self.std * torch.randn(image.shape, generator=gen, device=image.device)


@dataclass(frozen=True)
class RandomGaussianNoise:
    std: object = (0.0, 0.05)

    def __call__(self, rng) -> GaussianNoise:
        return GaussianNoise(float(rng.uniform(*as_range(self.std))), _seed(rng))


def _gaussian_kernel(sigma: float, device) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


@dataclass(frozen=True)
class GaussianBlur:
    """Separable Gaussian blur with one sigma (voxels) per axis."""

    sigmas: tuple = (0.0, 0.0, 0.0)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        out = image[None]
        for axis, sigma in enumerate(self.sigmas):
            if sigma < 0.05:
                continue
            kernel = _gaussian_kernel(sigma, image.device)
            shape = [1, 1, 1, 1, 1]
            shape[2 + axis] = kernel.numel()
            padding = [0, 0, 0]
            padding[axis] = kernel.numel() // 2
            out = F.conv3d(out, kernel.view(shape), padding=tuple(padding))
        return out[0]


@dataclass(frozen=True)
class RandomGaussianBlur:
    sigma: object = (0.0, 1.0)

    def __call__(self, rng) -> GaussianBlur:
        return GaussianBlur(_uniform3(rng, self.sigma))


@dataclass(frozen=True)
class BiasField:
    """Multiplicative smooth field exp(f), f of ``std`` on a grid of ``spacing`` voxels."""

    std: float = 0.0
    seed: int = 0
    spacing: float = 20.0

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.std == 0:
            return image
        shape = image.shape[-3:]
        field = _smooth_field(self.seed, self.std, 1, _coarse_shape(shape, self.spacing), shape, image.device)
        return image * torch.exp(field[0])


@dataclass(frozen=True)
class RandomBiasField:
    max_std: float = 0.3
    spacing: float = 20.0

    def __call__(self, rng) -> BiasField:
        return BiasField(float(rng.uniform(0, self.max_std)), _seed(rng), self.spacing)


@dataclass(frozen=True)
class Gamma:
    """Min–max scale to [0, 1], then raise to ``gamma``."""

    gamma: float = 1.0

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        low, high = image.min(), image.max()
        scaled = (image - low) / torch.clamp(high - low, min=1e-6)
        return scaled.clamp(0, 1) ** self.gamma


@dataclass(frozen=True)
class RandomGamma:
    log_std: float = 0.25

    def __call__(self, rng) -> Gamma:
        return Gamma(float(np.exp(rng.normal(0.0, self.log_std))))


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
