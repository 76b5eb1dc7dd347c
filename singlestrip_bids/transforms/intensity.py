"""Intensity transforms: images (1, X, Y, Z) float32 tensors, on any device."""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from singlestrip_bids.transforms.ranges import Params, as_range, draw_seed, torch_generator, uniform3
from singlestrip_bids.transforms.sampling import coarse_shape, smooth_field


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
        noise = torch.randn(labels.shape, generator=torch_generator(self.seed, labels.device), device=labels.device)
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
            return ClassIntensities(tuple(means), tuple(stds), draw_seed(rng))
        means = rng.uniform(*as_range(self.mean), self.n_classes)
        stds = rng.uniform(*as_range(self.std), self.n_classes)
        if rng.uniform() < self.background_zero_probability:
            means[0], stds[0] = 0.0, 0.0
        return ClassIntensities(tuple(means.tolist()), tuple(stds.tolist()), draw_seed(rng))


@dataclass(frozen=True)
class GaussianNoise:
    """Additive white noise of ``std``."""

    std: float = 0.0
    seed: int = 0

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.std == 0:
            return image
        generator = torch_generator(self.seed, image.device)
        return image + self.std * torch.randn(image.shape, generator=generator, device=image.device)


@dataclass(frozen=True)
class RandomGaussianNoise:
    std: object = (0.0, 0.05)

    def __call__(self, rng) -> GaussianNoise:
        return GaussianNoise(float(rng.uniform(*as_range(self.std))), draw_seed(rng))


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
        return GaussianBlur(uniform3(rng, self.sigma))


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
        field = smooth_field(self.seed, self.std, 1, coarse_shape(shape, self.spacing), shape, image.device)
        return image * torch.exp(field[0])


@dataclass(frozen=True)
class RandomBiasField:
    max_std: float = 0.3
    spacing: float = 20.0

    def __call__(self, rng) -> BiasField:
        return BiasField(float(rng.uniform(0, self.max_std)), draw_seed(rng), self.spacing)


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
class IntensityScaling(Params):
    """Multiply intensities (a numpy array) by ``factor``."""

    factor: float

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return (image * self.factor).astype(np.float32)


class RandomIntensityScaling:
    """Factor drawn uniformly in ``1 ± fraction`` (or in ``1 + (low, high)`` for a pair)."""

    def __init__(self, fraction=0.2):
        self.range = tuple(1.0 + bound for bound in as_range(fraction))

    def __call__(self, rng: np.random.Generator) -> IntensityScaling:
        return IntensityScaling(float(rng.uniform(*self.range)))
