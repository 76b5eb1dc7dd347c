"""transforms/intensity.py: identity parameters, the statistics of the draws."""

import numpy as np
import pytest
import torch

from singlestrip_bids.transforms.field_of_view import FieldOfView, ThickSlices
from singlestrip_bids.transforms.intensity import (
    BiasField,
    GaussianBlur,
    GaussianNoise,
    RandomClassIntensities,
    RandomGamma,
    RandomIntensityScaling,
)


@pytest.mark.parametrize("step", [GaussianNoise(), GaussianBlur(), BiasField(), ThickSlices(),
                                  FieldOfView()])
def test_identity_intensity_parameters_are_identity(step):
    image = torch.rand(1, 16, 16, 16)
    assert torch.equal(step(image), image)


def test_intensity_draws_match_their_ranges():
    rng = np.random.default_rng(0)
    gammas = np.array([RandomGamma(0.25)(rng).gamma for _ in range(4000)])
    assert abs(np.log(gammas).std() - 0.25) < 0.02
    intensity = [RandomClassIntensities(16)(rng) for _ in range(2000)]
    black = np.mean([d.means[0] == 0 for d in intensity])
    assert abs(black - 0.2) < 0.03
    means = np.array([d.means[1:] for d in intensity])
    assert means.min() >= 25 / 255 and means.max() <= 225 / 255
    factors = np.array([RandomIntensityScaling(0.2)(rng).factor for _ in range(2000)])
    assert factors.min() >= 0.8 and factors.max() <= 1.2 and abs(factors.mean() - 1.0) < 0.01
