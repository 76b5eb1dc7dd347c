"""transforms.failures: each failure damages a mask the way its name says, in mm, replayably."""

import numpy as np
import pytest
import torch
from helpers_shapes import sphere

from singlestrip_bids.metrics import dice
from singlestrip_bids.transforms.failures import (
    BoundaryShift,
    BoundaryWarp,
    Holes,
    Leak,
    MissingSlab,
    RandomFailures,
    RigidMove,
    ThresholdedPrediction,
    apply_failures,
)

VOXEL_MM = 2.0


@pytest.fixture
def brain():
    """A 24 mm-radius ball (12 voxels of 2 mm) and an image: brain 0.6, a shell of tissue 0.9, air 0."""
    mask = torch.from_numpy(sphere((48, 48, 48), 12.0).astype(np.float32))
    image = torch.from_numpy(np.where(sphere((48, 48, 48), 18.0), 0.9, 0.0).astype(np.float32))
    return mask, torch.where(mask > 0, torch.tensor(0.6), image)


def _volume(mask):
    return float(mask.sum())


def test_boundary_shift_dilates_and_erodes_by_mm(brain):
    mask, image = brain
    grown, shrunk = BoundaryShift(4.0)(mask, image, VOXEL_MM), BoundaryShift(-4.0)(mask, image, VOXEL_MM)
    assert _volume(shrunk) < _volume(mask) < _volume(grown)
    assert bool((shrunk <= mask).all()) and bool((mask <= grown).all())
    assert torch.equal(BoundaryShift(0.9)(mask, image, VOXEL_MM), mask)  # under half a voxel: nothing


def test_rigid_move_keeps_the_volume_and_moves_by_the_shift(brain):
    mask, image = brain
    assert torch.equal(RigidMove((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))(mask, image, VOXEL_MM), mask)
    moved = RigidMove((0.0, 0.0, 0.0), (8.0, 0.0, 0.0))(mask, image, VOXEL_MM)  # 4 voxels along x
    centre = lambda m: torch.nonzero(m > 0).float().mean(0)  # noqa: E731
    assert torch.allclose(centre(moved) - centre(mask), torch.tensor([4.0, 0.0, 0.0]), atol=0.05)
    assert abs(_volume(moved) - _volume(mask)) < 0.02 * _volume(mask)


def test_missing_slab_cuts_across_the_axis(brain):
    mask, image = brain
    cut = MissingSlab(axis=2, position=0.5, thickness_mm=8.0)(mask, image, VOXEL_MM)
    per_slice = (mask - cut).sum(dim=(0, 1))
    assert int((per_slice > 0).sum()) == 4 and bool((cut <= mask).all())


def test_leak_takes_in_only_tissue(brain):
    mask, image = brain
    leaked = Leak((0.0, 0.0, 1.0), 12.0)(mask, image, VOXEL_MM)
    added = (leaked - mask) > 0
    assert added.sum() > 50 and bool((image[added] > 0.1).all())
    assert bool((mask <= leaked).all())


def test_holes_and_warp_damage_inside_and_at_the_boundary(brain):
    mask, image = brain
    holed = Holes(((0.5, 0.5, 0.5),), 6.0)(mask, image, VOXEL_MM)
    assert holed[24, 24, 24] == 0 and bool((holed <= mask).all())
    warped = BoundaryWarp(seed=3, amplitude=0.3, spacing_mm=12.0)(mask, image, VOXEL_MM)
    assert 0.6 < dice(warped.numpy() > 0, mask.numpy() > 0) < 0.99
    assert torch.equal(warped, BoundaryWarp(seed=3, amplitude=0.3, spacing_mm=12.0)(mask, image, VOXEL_MM))


def test_thresholded_prediction():
    probability = torch.linspace(0, 1, 11)
    assert ThresholdedPrediction(0.45)(probability).sum() == 6


def test_random_failures_replay_from_the_seed_and_spread_the_dice(brain):
    mask, image = brain
    draws = [RandomFailures()(np.random.default_rng(seed)) for seed in range(40)]
    again = [RandomFailures()(np.random.default_rng(seed)) for seed in range(40)]
    assert draws == again and any(not d for d in draws) and any(len(d) == 2 for d in draws)
    assert all(failure.params() for failures in draws for failure in failures)
    dices = [dice(apply_failures(d, mask, image, VOXEL_MM).numpy() > 0, mask.numpy() > 0) for d in draws]
    assert min(dices) < 0.8 and max(dices) == 1.0 and len({round(v, 3) for v in dices}) > 20
