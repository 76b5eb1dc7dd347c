"""Synthesis: identity parameters, mask alignment, replay, statistics of the draws."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from singlestrip_bids.synthesis import transforms as T
from singlestrip_bids.synthesis.generator import Draw, SynthesisConfig, Synthesizer
from singlestrip_bids.synthesis.gmm import class_contrast, fit_class_map


def _sphere(shape=(48, 48, 48), radius=12.0, centre=None):
    centre = np.array(shape) / 2 - 0.5 if centre is None else np.asarray(centre)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    return np.linalg.norm(grid - centre, axis=-1) <= radius


def _checkerboard_labels(shape=(48, 48, 48)):
    board = ((np.indices(shape) // 6).sum(0) % 2).astype(np.uint8)
    return board + 2 * _sphere(shape).astype(np.uint8)


def test_identity_spatial_transform_is_identity():
    labels = torch.as_tensor(_checkerboard_labels())[None]
    mask = torch.as_tensor(_sphere(), dtype=torch.float32)[None]
    centre = (np.array(labels.shape[-3:]) - 1) / 2
    out_labels, out_mask = T.SpatialTransform()(labels, mask, labels.shape[-3:], centre)
    assert torch.equal(out_labels, labels)
    assert torch.equal(out_mask, mask)


@pytest.mark.parametrize("step", [T.GaussianNoise(), T.GaussianBlur(), T.BiasField(), T.ThickSlices(),
                                  T.FieldOfView()])
def test_identity_intensity_parameters_are_identity(step):
    image = torch.rand(1, 16, 16, 16)
    assert torch.equal(step(image), image)


def test_mask_stays_aligned_with_the_image_under_random_warps():
    """Render the sphere's class white and the rest black: the image must coincide with the mask."""
    shape = (48, 48, 48)
    sphere = _sphere(shape)
    labels = np.where(sphere, 2, (np.indices(shape) // 6).sum(0) % 2).astype(np.uint8)
    # translations of a few voxels keep the sphere (radius 12) in this small patch
    config = SynthesisConfig(patch_sizes=shape[:1], spatial=T.RandomSpatial(translation=6.0))
    synth = Synthesizer([(labels, sphere)], config, seed=3)
    white_sphere = T.ClassIntensities((0.0, 0.0, 1.0), (0.0, 0.0, 0.0))
    for _ in range(4):
        draw = replace(synth.sample(), intensities=white_sphere, noise=T.GaussianNoise(), blur=T.GaussianBlur(),
                       bias=T.BiasField(), thick_slices=T.ThickSlices(), air_clutter=T.AirClutter())
        image, mask = synth.render(draw)
        assert draw.spatial.deformation_std > 0 or draw.spatial.rotation_deg != (0, 0, 0)
        assert mask.sum() > 1000
        agreement = ((image[0] > 0.5) == (mask[0] > 0)).float().mean().item()
        assert agreement > 0.995, agreement


def test_replay_reproduces_a_draw_bit_for_bit_through_json():
    shape = (32, 32, 32)
    labels = ((np.indices(shape) // 4).sum(0) % 4).astype(np.uint8)
    synth = Synthesizer([(labels, _sphere(shape, 8))], SynthesisConfig(patch_sizes=(32,)), seed=11)
    image, mask, draws = synth.batch(1)
    replayed = Draw.from_dict(json.loads(json.dumps(draws[0].to_dict())))
    again_image, again_mask = synth.render(replayed)
    assert torch.equal(again_image, image[0]) and torch.equal(again_mask, mask[0])
    other = Synthesizer([(labels, _sphere(shape, 8))], SynthesisConfig(patch_sizes=(32,)), seed=11)
    assert other.sample() == draws[0]  # same seed, same parameters


def test_statistics_of_many_draws_match_their_ranges():
    rng = np.random.default_rng(0)
    spatial = [T.RandomSpatial(rotation_deg=20, scale=(0.85, 1.15))(rng) for _ in range(2000)]
    rotations = np.array([s.rotation_deg for s in spatial])
    scales = np.array([s.scale for s in spatial])
    assert rotations.min() >= -20 and rotations.max() <= 20 and abs(rotations.mean()) < 1.0
    assert scales.min() >= 0.85 and scales.max() <= 1.15 and abs(scales.mean() - 1.0) < 0.01
    gammas = np.array([T.RandomGamma(0.25)(rng).gamma for _ in range(4000)])
    assert abs(np.log(gammas).std() - 0.25) < 0.02
    intensity = [T.RandomClassIntensities(16)(rng) for _ in range(2000)]
    black = np.mean([d.means[0] == 0 for d in intensity])
    assert abs(black - 0.2) < 0.03
    means = np.array([d.means[1:] for d in intensity])
    assert means.min() >= 25 / 255 and means.max() <= 225 / 255


def test_invalid_ranges_are_refused():
    with pytest.raises(ValueError):
        T.as_range((2, 1))
    with pytest.raises(ValueError):
        T.as_range(-1)
    with pytest.raises(ValueError):
        T.as_range("wide")


def test_gmm_class_map_is_deterministic_and_split_by_the_mask():
    rng = np.random.default_rng(0)
    mask = _sphere((32, 32, 32), 9)
    image = np.where(mask, rng.normal(100, 10, mask.shape), rng.normal(20, 5, mask.shape)).astype(np.float32)
    labels, summary = fit_class_map(image, mask, n_brain=4, n_head=3, seed=5)
    again, _ = fit_class_map(image, mask, n_brain=4, n_head=3, seed=5)
    assert np.array_equal(labels, again)
    assert labels[mask].min() >= 3 and labels[~mask].max() <= 2
    assert summary["brain"]["means"] == sorted(summary["brain"]["means"])


def test_source_contrast_draws_keep_the_fitted_class_means_in_their_share():
    rng = np.random.default_rng(1)
    mask = _sphere((32, 32, 32), 9)
    image = np.where(mask, rng.normal(100, 10, mask.shape), rng.normal(20, 5, mask.shape)).astype(np.float32)
    labels, summary = fit_class_map(image, mask, n_brain=2, n_head=3, seed=0)
    means, stds = class_contrast(summary)
    assert len(means) == 5 and max(means) == pytest.approx(0.9)
    assert list(means[3:]) == sorted(means[3:]) and min(means[3:]) > max(means[:3])
    config = SynthesisConfig(patch_sizes=(32,), source_contrast_probability=0.3)
    draws = [Synthesizer([(labels, mask, summary)], config, seed=s).sample() for s in range(400)]
    own = [d for d in draws if d.intensities.means == means]
    assert abs(len(own) / len(draws) - 0.3) < 0.07 and all(d.intensities.stds == stds for d in own)
    plain = Synthesizer([(labels, mask)], config, seed=0)
    assert all(plain.sample().intensities.means != means for _ in range(50))  # no summary, no own contrast


def test_patch_sizes_draw_each_axis_from_the_set_and_replay():
    shape = (32, 32, 32)
    labels = ((np.indices(shape) // 4).sum(0) % 4).astype(np.uint8)
    config = SynthesisConfig(patch_sizes=(16, 32, 48))
    synth = Synthesizer([(labels, _sphere(shape, 8))], config, seed=2)
    shapes = {synth.sample().patch_shape for _ in range(60)}
    assert all(set(s) <= {16, 32, 48} for s in shapes) and len(shapes) > 10  # axes drawn independently
    image, mask, draws = synth.batch(3)
    assert image.shape[2:] == mask.shape[2:] == draws[0].patch_shape  # one shape per batch
    assert all(d.patch_shape == draws[0].patch_shape for d in draws)
    replayed = Draw.from_dict(json.loads(json.dumps(draws[1].to_dict())))
    assert torch.equal(synth.render(replayed)[0], image[1])
    fixed = Synthesizer([(labels, _sphere(shape, 8))], SynthesisConfig(patch_sizes=(16,)), seed=2)
    assert {fixed.sample().patch_shape for _ in range(5)} == {(16, 16, 16)}
    legacy = SynthesisConfig.from_dict({**SynthesisConfig().to_dict(), "patch_sizes": None, "patch_shape": [64] * 3})
    assert legacy.patch_sizes == (64,)  # a bundle written before patch sizes were drawn


def test_air_clutter_fills_only_air_outside_the_mask_and_no_classes_is_identity():
    shape = (40, 40, 40)
    brain = _sphere(shape, 10)
    head = _sphere(shape, 14)
    labels = torch.as_tensor(np.where(brain, 3, np.where(head, 1, 0)).astype(np.uint8))[None]
    mask = torch.as_tensor(brain, dtype=torch.float32)[None]
    assert torch.equal(T.AirClutter()(labels, mask), labels)
    filled = T.AirClutter(classes=(0, 2, 5), seed=4)(labels, mask)
    air = torch.as_tensor(~head)
    assert torch.equal(filled[0][~air], labels[0][~air])  # brain and scalp keep their classes
    assert set(filled[0][air].unique().tolist()) == {0, 2, 5}  # the air takes every drawn class
    assert torch.equal(T.AirClutter(classes=(0, 2, 5), seed=4)(labels, mask), filled)  # the seed decides
    assert not torch.equal(T.AirClutter(classes=(0, 2, 5), seed=5)(labels, mask), filled)
    # a mask that reaches into the air (a defaced example) keeps its air there unpainted
    wide = torch.as_tensor(_sphere(shape, 16), dtype=torch.float32)[None]
    assert (T.AirClutter(classes=(2,), seed=4)(labels, wide)[0][wide[0] > 0] == 2).sum() == 0


def test_air_clutter_draws_match_their_ranges_and_replay_through_json():
    rng = np.random.default_rng(0)
    draws = [T.RandomAirClutter(probability=0.5, count=(1, 6))(rng, 16) for _ in range(2000)]
    cluttered = [d for d in draws if d.classes]
    assert abs(len(cluttered) / len(draws) - 0.5) < 0.03
    assert all(d.classes[0] == 0 and len(set(d.classes)) == len(d.classes) for d in cluttered)
    counts = np.array([len(d.classes) - 1 for d in cluttered])
    assert counts.min() == 1 and counts.max() == 6
    assert {c for d in cluttered for c in d.classes} == set(range(16))
    shape = (32, 32, 32)
    labels = np.where(_sphere(shape, 12), (np.indices(shape) // 4).sum(0) % 3 + 1, 0).astype(np.uint8)
    config = SynthesisConfig(patch_sizes=(32,), air_clutter=T.RandomAirClutter(probability=1.0))
    synth = Synthesizer([(labels, _sphere(shape, 8))], config, seed=5)
    image, mask, draws = synth.batch(1)
    assert draws[0].air_clutter.classes
    replayed = Draw.from_dict(json.loads(json.dumps(draws[0].to_dict())))
    assert replayed == draws[0]
    assert torch.equal(synth.render(replayed)[0], image[0])
    without = draws[0].to_dict()
    del without["air_clutter"]  # a draw logged before air clutter existed replays without it
    assert Draw.from_dict(json.loads(json.dumps(without))).air_clutter == T.AirClutter()
    assert not torch.equal(synth.render(Draw.from_dict(without))[0], image[0])
