"""Dice and HD95 on shapes whose answers are known exactly."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from singlestrip_bids.metrics import dice, hd95, surface_distances


def ball(shape=(40, 40, 40), centre=(20, 20, 20), radius=9):
    """Boolean ball of ``radius`` voxels around ``centre`` (voxel indices)."""
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


def box(shape, lower, upper):
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(lo, hi) for lo, hi in zip(lower, upper))] = True
    return mask


def brute_force_hd95(a, b, spacing):
    """Reference: surface voxels by explicit neighbour checks, all pairwise distances in mm."""

    def surface_points(mask):
        padded = np.pad(mask, 1)
        inside = padded[1:-1, 1:-1, 1:-1]
        has_outside_neighbour = np.zeros_like(inside)
        for axis in range(3):
            for step in (-1, 1):
                has_outside_neighbour |= ~np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
        return np.argwhere(inside & has_outside_neighbour) * np.asarray(spacing, dtype=float)

    pa, pb = surface_points(a), surface_points(b)
    pairwise = cdist(pa, pb)
    return np.percentile(np.concatenate([pairwise.min(1), pairwise.min(0)]), 95)


def test_dice_of_box_shifted_by_two_is_exact():
    a = box((20, 20, 20), (5, 5, 5), (15, 15, 15))
    b = box((20, 20, 20), (7, 5, 5), (17, 15, 15))
    assert dice(a, b) == pytest.approx(0.8, abs=1e-12)  # overlap 8*10*10 of 1000 voxels each


def test_dice_of_sphere_and_shifted_sphere_matches_voxel_sets():
    a = ball(centre=(20, 20, 20))
    b = ball(centre=(23, 20, 20))
    set_a = {tuple(p) for p in np.argwhere(a)}
    set_b = {tuple(p) for p in np.argwhere(b)}
    expected = 2 * len(set_a & set_b) / (len(set_a) + len(set_b))
    assert dice(a, b) == pytest.approx(expected, abs=1e-12)
    assert 0.5 < dice(a, b) < 0.9


def test_dice_edge_cases():
    empty = np.zeros((4, 4, 4), dtype=bool)
    assert dice(empty, empty) == 1.0
    assert dice(empty, ~empty) == 0.0
    assert dice(~empty, ~empty) == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        dice(empty, np.zeros((4, 4, 5)))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.5, 1.0, 2.0), (0.5, 3.0, 0.8)])
def test_hd95_sphere_vs_shifted_sphere_matches_brute_force(spacing):
    a = ball(centre=(20, 20, 20))
    b = ball(centre=(23, 19, 20))
    assert hd95(a, b, spacing) == pytest.approx(brute_force_hd95(a, b, spacing), rel=1e-12)


@pytest.mark.parametrize("shift", [1, 2, 3, 4])
def test_hd95_of_sphere_shifted_along_an_axis_is_the_shift_in_mm(shift):
    a = ball(centre=(20, 20, 20))
    b = ball(centre=(20 + shift, 20, 20))
    # More than 5% of each digital sphere's surface lies on its flat polar caps, which sit exactly
    # `shift` voxels from the other sphere's caps; nothing is farther than the poles.
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(shift, abs=1e-12)
    assert hd95(a, b, (2.0, 2.0, 2.0)) == pytest.approx(2 * shift, abs=1e-12)
    assert surface_distances(a, b, (1.0, 1.0, 1.0)).max() == pytest.approx(shift, abs=1e-12)


def test_hd95_honours_anisotropic_voxels():
    a = ball(centre=(20, 20, 20))
    along_coarse_axis = ball(centre=(23, 20, 20))
    along_fine_axis = ball(centre=(20, 20, 23))
    spacing = (3.0, 1.0, 1.0)
    # Shifted along a 1 mm axis: 3 mm, as in the isotropic case. Along the 3 mm axis the poles are
    # 9 mm apart, but most of the surface finds the other one sideways, through the 1 mm axes.
    assert hd95(a, along_fine_axis, spacing) == pytest.approx(3.0, abs=1e-12)
    assert hd95(a, along_coarse_axis, spacing) == pytest.approx(
        brute_force_hd95(a, along_coarse_axis, spacing), abs=1e-12
    )
    assert 3.0 < hd95(a, along_coarse_axis, spacing) < 9.0
    assert surface_distances(a, along_coarse_axis, spacing).max() == pytest.approx(9.0, abs=1e-12)


def test_hd95_of_nested_boxes_is_the_gap():
    # Every surface voxel of the outer box lies on a face 2 voxels out of the inner box or on its
    # edges/corners (farther); the outer faces outnumber them, so the 95th percentile is the gap,
    # larger than the 2-voxel gap only through the rim.
    inner = box((30, 30, 30), (5, 5, 5), (25, 25, 25))
    outer = box((30, 30, 30), (3, 3, 3), (27, 27, 27))
    distances = surface_distances(inner, outer, (1.0, 1.0, 1.0))
    assert distances.min() == pytest.approx(2.0)
    assert distances.max() == pytest.approx(np.sqrt(12.0))  # corner to corner: (2, 2, 2)
    assert hd95(inner, outer, (1.0, 1.0, 1.0)) == pytest.approx(brute_force_hd95(inner, outer, (1, 1, 1)))


def test_hd95_counts_the_grid_edge_as_surface():
    a = box((10, 10, 10), (0, 0, 0), (10, 10, 5))  # touches the grid on five sides
    b = box((10, 10, 10), (0, 0, 0), (10, 10, 7))
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(brute_force_hd95(a, b, (1, 1, 1)))


def test_hd95_edge_cases():
    empty = np.zeros((5, 5, 5), dtype=bool)
    full = box((5, 5, 5), (1, 1, 1), (4, 4, 4))
    assert hd95(full, full, (1.0, 1.0, 1.0)) == 0.0
    assert hd95(empty, empty, (1.0, 1.0, 1.0)) == 0.0
    assert hd95(empty, full, (1.0, 1.0, 1.0)) == float("inf")
    with pytest.raises(ValueError, match="shapes differ"):
        hd95(empty, np.zeros((5, 5, 6)), (1.0, 1.0, 1.0))
