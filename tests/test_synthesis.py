"""synthesis/: mask alignment under random warps, replay through JSON, GMM class maps, patch sizes."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers_shapes import sphere

from singlestrip_bids.synthesis.generator import Draw, SynthesisConfig, Synthesizer
from singlestrip_bids.synthesis.gmm import class_contrast, fit_class_map
from singlestrip_bids.transforms.field_of_view import AirClutter, RandomAirClutter, ThickSlices
from singlestrip_bids.transforms.intensity import BiasField, ClassIntensities, GaussianBlur, GaussianNoise
from singlestrip_bids.transforms.spatial import RandomSpatial


def test_mask_stays_aligned_with_the_image_under_random_warps():
    """Render the sphere's class white and the rest black: the image must coincide with the mask."""
    shape = (48, 48, 48)
    ball = sphere(shape)
    labels = np.where(ball, 2, (np.indices(shape) // 6).sum(0) % 2).astype(np.uint8)
    # translations of a few voxels keep the sphere (radius 12) in this small patch
    config = SynthesisConfig(patch_sizes=shape[:1], spatial=RandomSpatial(translation=6.0))
    synth = Synthesizer([(labels, ball)], config, seed=3)
    white_sphere = ClassIntensities((0.0, 0.0, 1.0), (0.0, 0.0, 0.0))
    for _ in range(4):
        draw = replace(synth.sample(), intensities=white_sphere, noise=GaussianNoise(), blur=GaussianBlur(),
                       bias=BiasField(), thick_slices=ThickSlices(), air_clutter=AirClutter())
        image, mask = synth.render(draw)
        assert draw.spatial.deformation_std > 0 or draw.spatial.rotation_deg != (0, 0, 0)
        assert mask.sum() > 1000
        agreement = ((image[0] > 0.5) == (mask[0] > 0)).float().mean().item()
        assert agreement > 0.995, agreement


def test_replay_reproduces_a_draw_bit_for_bit_through_json():
    shape = (32, 32, 32)
    labels = ((np.indices(shape) // 4).sum(0) % 4).astype(np.uint8)
    synth = Synthesizer([(labels, sphere(shape, 8))], SynthesisConfig(patch_sizes=(32,)), seed=11)
    image, mask, draws = synth.batch(1)
    replayed = Draw.from_dict(json.loads(json.dumps(draws[0].to_dict())))
    again_image, again_mask = synth.render(replayed)
    assert torch.equal(again_image, image[0]) and torch.equal(again_mask, mask[0])
    other = Synthesizer([(labels, sphere(shape, 8))], SynthesisConfig(patch_sizes=(32,)), seed=11)
    assert other.sample() == draws[0]  # same seed, same parameters


def test_gmm_class_map_is_deterministic_and_split_by_the_mask():
    rng = np.random.default_rng(0)
    mask = sphere((32, 32, 32), 9)
    image = np.where(mask, rng.normal(100, 10, mask.shape), rng.normal(20, 5, mask.shape)).astype(np.float32)
    labels, summary = fit_class_map(image, mask, n_brain=4, n_head=3, seed=5)
    again, _ = fit_class_map(image, mask, n_brain=4, n_head=3, seed=5)
    assert np.array_equal(labels, again)
    assert labels[mask].min() >= 3 and labels[~mask].max() <= 2
    assert summary["brain"]["means"] == sorted(summary["brain"]["means"])


def test_source_contrast_draws_keep_the_fitted_class_means_in_their_share():
    rng = np.random.default_rng(1)
    mask = sphere((32, 32, 32), 9)
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
    synth = Synthesizer([(labels, sphere(shape, 8))], config, seed=2)
    shapes = {synth.sample().patch_shape for _ in range(60)}
    assert all(set(s) <= {16, 32, 48} for s in shapes) and len(shapes) > 10  # axes drawn independently
    image, mask, draws = synth.batch(3)
    assert image.shape[2:] == mask.shape[2:] == draws[0].patch_shape  # one shape per batch
    assert all(d.patch_shape == draws[0].patch_shape for d in draws)
    replayed = Draw.from_dict(json.loads(json.dumps(draws[1].to_dict())))
    assert torch.equal(synth.render(replayed)[0], image[1])
    fixed = Synthesizer([(labels, sphere(shape, 8))], SynthesisConfig(patch_sizes=(16,)), seed=2)
    assert {fixed.sample().patch_shape for _ in range(5)} == {(16, 16, 16)}
    legacy = SynthesisConfig.from_dict({**SynthesisConfig().to_dict(), "patch_sizes": None, "patch_shape": [64] * 3})
    assert legacy.patch_sizes == (64,)  # a bundle written before patch sizes were drawn


def test_air_clutter_draws_match_their_ranges_and_replay_through_json():
    rng = np.random.default_rng(0)
    draws = [RandomAirClutter(probability=0.5, count=(1, 6))(rng, 16) for _ in range(2000)]
    cluttered = [d for d in draws if d.classes]
    assert abs(len(cluttered) / len(draws) - 0.5) < 0.03
    assert all(d.classes[0] == 0 and len(set(d.classes)) == len(d.classes) for d in cluttered)
    counts = np.array([len(d.classes) - 1 for d in cluttered])
    assert counts.min() == 1 and counts.max() == 6
    assert {c for d in cluttered for c in d.classes} == set(range(16))
    shape = (32, 32, 32)
    labels = np.where(sphere(shape, 12), (np.indices(shape) // 4).sum(0) % 3 + 1, 0).astype(np.uint8)
    config = SynthesisConfig(patch_sizes=(32,), air_clutter=RandomAirClutter(probability=1.0))
    synth = Synthesizer([(labels, sphere(shape, 8))], config, seed=5)
    image, mask, draws = synth.batch(1)
    assert draws[0].air_clutter.classes
    replayed = Draw.from_dict(json.loads(json.dumps(draws[0].to_dict())))
    assert replayed == draws[0]
    assert torch.equal(synth.render(replayed)[0], image[0])
    without = draws[0].to_dict()
    del without["air_clutter"]  # a draw logged before air clutter existed replays without it
    assert Draw.from_dict(json.loads(json.dumps(without))).air_clutter == AirClutter()
    assert not torch.equal(synth.render(Draw.from_dict(without))[0], image[0])


def test_real_image_draws_show_the_warped_source_image_and_replay():
    """A source with its image: about the configured share of draws show that image itself (here a
    gradient the class map cannot paint), aligned with the mask; replay through JSON is exact."""
    shape = (32, 32, 32)
    ball = sphere(shape, 8)
    labels = np.where(ball, 1, 0).astype(np.uint8)
    gradient = np.indices(shape)[0].astype(np.float32)
    config = SynthesisConfig(patch_sizes=(32,), real_image_probability=0.5,
                             spatial=RandomSpatial(translation=2.0, rotation_deg=0.0, scale=(1.0, 1.0), shear=0.0,
                                                   deformation_max_std=0.0))
    synth = Synthesizer([(labels, ball, None, gradient)], config, seed=4)
    draws = [synth.sample() for _ in range(200)]
    assert 80 < sum(d.real_image for d in draws) < 120
    real = next(d for d in draws if d.real_image)
    quiet = replace(real, noise=GaussianNoise(), blur=GaussianBlur(), bias=BiasField(), thick_slices=ThickSlices())
    image, mask = synth.render(quiet)
    along_x = image[0].mean(dim=(1, 2))
    assert (torch.diff(along_x[2:-2]) > 0).all()  # the gradient, not a painted class map
    replayed = Draw.from_dict(json.loads(json.dumps(real.to_dict())))
    assert replayed == real and torch.equal(synth.render(replayed)[0], synth.render(real)[0])
    without = Synthesizer([(labels, ball)], config, seed=4)
    assert not any(without.sample().real_image for _ in range(50))  # no image: always painted


def test_edge_band_holds_the_voxels_near_the_edge_on_both_sides():
    from singlestrip_bids.synthesis.generator import edge_band

    cube = torch.zeros(1, 1, 12, 12, 12)
    cube[..., 3:9, 3:9, 3:9] = 1.0
    band = edge_band(cube, 1)
    assert band[0, 0, 2, 5, 5] == 1 and band[0, 0, 3, 5, 5] == 1  # one voxel out, one voxel in
    assert band[0, 0, 5, 5, 5] == 0 and band[0, 0, 0, 5, 5] == 0  # deep inside, far outside
    assert int(band.sum()) == 8**3 - 4**3


def test_pseudo_label_draws_leave_their_edge_band_out_of_the_loss():
    shape = (32, 32, 32)
    labels = ((np.indices(shape) // 4).sum(0) % 4).astype(np.uint8)
    ball = sphere(shape, 9)
    sources = [(labels, ball), (labels, ball)]  # the labeled example, then one pseudo-label
    # small translations keep the ball (radius 9) in the patch
    config = SynthesisConfig(patch_sizes=(32,), pseudo_label_band=2, spatial=RandomSpatial(translation=3.0))
    synth = Synthesizer(sources, config, seed=4, n_labeled=1)
    seen, banded = set(), 0
    for _ in range(6):
        images, masks, draws = synth.batch(2)
        weights = synth.loss_weights(masks, draws)
        for row, draw in enumerate(draws):
            seen.add(draw.source)
            expected = torch.ones_like(masks[row])
            if draw.source == 1:
                from singlestrip_bids.synthesis.generator import edge_band

                expected = 1.0 - edge_band(masks[row:row + 1], 2)[0]
                banded += int(expected.min() == 0)
            got = torch.ones_like(masks[row]) if weights is None else weights[row]
            assert torch.equal(got, expected)
    assert seen == {0, 1} and banded > 0
    # no band, or only true labels: every voxel counts
    assert Synthesizer(sources, SynthesisConfig(patch_sizes=(32,)), seed=4, n_labeled=1).training_batch(2)[2] is None
    assert Synthesizer(sources, config, seed=4).training_batch(2)[2] is None


def test_zero_weight_voxels_do_not_count_in_the_soft_dice():
    from singlestrip_bids.model.loss import soft_dice_loss

    target = torch.zeros(1, 1, 4, 4, 4)
    target[..., :2] = 1.0
    wrong = target.clone()
    wrong[..., 2] = 1.0  # a slab of false positives
    weight = torch.ones_like(target)
    assert soft_dice_loss(wrong, target) > 0.1
    weight[..., 2] = 0.0
    assert soft_dice_loss(wrong, target, weight) == pytest.approx(0.0, abs=1e-6)
    assert soft_dice_loss(wrong, target, torch.ones_like(target)) == soft_dice_loss(wrong, target)
