"""transforms/spatial.py: identity parameters, one rotation for synthesis and QC, replayable draws."""

import numpy as np
import pytest
import torch
from helpers_shapes import checkerboard_labels, sphere

from singlestrip_bids.transforms.spatial import (
    Flip,
    RandomFlip,
    RandomRotation,
    RandomScaling,
    RandomShift,
    RandomSpatial,
    Rotation,
    Scaling,
    Shift,
    SpatialTransform,
    compose,
)


def test_identity_spatial_transform_is_identity():
    labels = torch.as_tensor(checkerboard_labels())[None]
    mask = torch.as_tensor(sphere(), dtype=torch.float32)[None]
    centre = (np.array(labels.shape[-3:]) - 1) / 2
    out_labels, out_mask = SpatialTransform()(labels, mask, labels.shape[-3:], centre)
    assert torch.equal(out_labels, labels)
    assert torch.equal(out_mask, mask)


def test_spatial_draws_match_their_ranges():
    rng = np.random.default_rng(0)
    spatial = [RandomSpatial(rotation_deg=20, scale=(0.85, 1.15))(rng) for _ in range(2000)]
    rotations = np.array([s.rotation_deg for s in spatial])
    scales = np.array([s.scale for s in spatial])
    assert rotations.min() >= -20 and rotations.max() <= 20 and abs(rotations.mean()) < 1.0
    assert scales.min() >= 0.85 and scales.max() <= 1.15 and abs(scales.mean() - 1.0) < 0.01


def test_identity_parameters_give_identity_matrices():
    for transform in (Rotation((0.0, 0.0, 0.0)), Scaling(1.0), Shift((0.0, 0.0, 0.0)), Flip((False,) * 3)):
        np.testing.assert_allclose(transform.matrix(), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(compose([Scaling(2.0), Shift((1.0, 0.0, 0.0))]) @ [1, 0, 0, 1], [3, 0, 0, 1])
    # 90 degrees about z takes x to y, about y takes z to x, about x takes y to z (right-handed)
    np.testing.assert_allclose(Rotation((0.0, 0.0, 90.0)).matrix() @ [1, 0, 0, 1], [0, 1, 0, 1], atol=1e-12)
    np.testing.assert_allclose(Rotation((0.0, 90.0, 0.0)).matrix() @ [0, 0, 1, 1], [1, 0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(Rotation((90.0, 0.0, 0.0)).matrix() @ [0, 1, 0, 1], [0, 0, 1, 1], atol=1e-12)


def test_synthesis_and_qc_rotate_the_same_way():
    degrees = (12.0, -30.0, 47.0)
    np.testing.assert_allclose(Rotation(degrees).matrix()[:3, :3], SpatialTransform(rotation_deg=degrees).matrix())


def test_random_transforms_replay_and_respect_their_ranges():
    def draws(seed):
        rng = np.random.default_rng(seed)
        sampler = [RandomRotation(30), RandomScaling((0.7, 1.4)), RandomShift(10), RandomFlip((0,))]
        return [[sample(rng) for sample in sampler] for _ in range(50)]

    first, again, other = draws(1), draws(1), draws(2)
    assert first == again and first != other
    for rotation, scaling, shift, flip in first:
        assert all(-30 <= a <= 30 for a in rotation.degrees)
        assert 0.7 <= scaling.factor <= 1.4
        assert all(-10 <= v <= 10 for v in shift.offset_mm)
        assert not flip.axes[1] and not flip.axes[2]
    assert any(draw[3].axes[0] for draw in first) and not all(draw[3].axes[0] for draw in first)
    assert first[0][0].params() == {"Rotation": {"degrees": list(first[0][0].degrees)}}
    with pytest.raises(ValueError):
        RandomScaling((1.4, 0.7))
