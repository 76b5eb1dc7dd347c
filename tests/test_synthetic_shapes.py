"""PUMBA mode: synthetic heads (no image read), their stream, and the training that ships a synthetic bundle."""

import json
import math

import numpy as np
import pytest
import torch

from singlestrip_bids.synthesis.shape_stream import ShapeDraw, ShapeSynthesizer
from singlestrip_bids.synthesis.shapes import CORTEX, N_CLASSES, RandomSyntheticHead, SyntheticHead

SMALL = RandomSyntheticHead(grid=48, radius=(7.0, 10.0), muscle=(1.0, 3.0))


def test_a_drawn_head_replays_from_its_logged_parameters():
    head = RandomSyntheticHead()(np.random.default_rng(3))
    logged = json.loads(json.dumps(head.to_dict()))
    labels, mask = head()
    again, again_mask = SyntheticHead.from_dict(logged)()
    assert torch.equal(labels, again) and torch.equal(mask, again_mask)
    other, _ = RandomSyntheticHead()(np.random.default_rng(4))()
    assert not torch.equal(labels, other)


def test_the_mask_is_the_brain_classes_and_the_brain_has_its_drawn_size():
    volumes = {}
    for radius in (12.0, 24.0):
        head = SyntheticHead(grid=96, radius=radius, shape_noise=0.05, fold_amplitude=1.0, seed=7)
        labels, mask = head()
        assert labels.dtype == torch.uint8 and int(labels.max()) < N_CLASSES
        assert torch.equal(mask, labels >= CORTEX)
        volumes[radius] = int(mask.sum())
        sphere = 4 / 3 * math.pi * radius**3
        assert 0.6 * sphere < volumes[radius] < 1.5 * sphere
        # the brain is wrapped: no brain voxel touches air
        brain = mask.numpy()
        grown = np.zeros_like(brain)
        grown[1:-1, 1:-1, 1:-1] = brain[1:-1, 1:-1, 1:-1]
        for axis in range(3):
            grown |= np.roll(brain, 1, axis) | np.roll(brain, -1, axis)
        assert not (grown & ~brain & (labels.numpy() == 0)).any()


def test_a_body_beside_the_brain_is_textured_tissue_and_leaves_the_brain_alone():
    plain = SyntheticHead(grid=96, radius=16.0, seed=3)
    with_body = SyntheticHead(grid=96, radius=16.0, seed=3, body=1.2, body_classes=3)
    (labels, mask), (body_labels, body_mask) = plain(), with_body()
    assert torch.equal(mask, body_mask)
    grown = (labels == 0) & (body_labels != 0)  # air that became tissue
    assert grown.sum() > 4 / 3 * math.pi * 16.0**3 * 0.5  # a mass about the brain's size or more
    assert len(torch.unique(body_labels[grown])) >= 2 and not (body_labels[grown] >= CORTEX).any()


def test_heads_vary_in_size_shells_and_what_lies_outside():
    rng = np.random.default_rng(0)
    heads = [RandomSyntheticHead()(rng) for _ in range(40)]
    radii = [h.radius for h in heads]
    assert min(radii) < 16 and max(radii) > 28
    assert any(h.neck > 0 for h in heads) and any(h.neck == 0 for h in heads)
    assert any(h.muscle > 0 for h in heads) and any(h.lobe > 0 for h in heads) and any(h.body > 0 for h in heads)
    assert len({h.shells for h in heads}) == 40


def test_the_stream_draws_replayable_pairs_whose_target_is_the_brain():
    synth = ShapeSynthesizer(SMALL, seed=5)
    images, masks, draws = synth.batch(2)
    assert images.shape == masks.shape and images.shape[:2] == (2, 1)
    assert set(torch.unique(masks).tolist()) <= {0.0, 1.0} and masks.sum() > 0
    logged = ShapeDraw.from_dict(json.loads(json.dumps(draws[0].to_dict())))
    image, mask = synth.render(logged)
    assert torch.equal(image, images[0]) and torch.equal(mask, masks[0])
    again = ShapeSynthesizer(SMALL, seed=5).batch(2)
    assert torch.equal(again[0], images)


def test_synthetic_training_writes_a_synthetic_bundle_and_resumes_exactly(tmp_path):
    from dataclasses import replace

    from singlestrip_bids.model.bundle import load_bundle
    from singlestrip_bids.model.unet import UNetConfig
    from singlestrip_bids.training.synthetic import synthetic_config, train_synthetic

    def config(steps):
        base = synthetic_config(steps=steps, seed=2, checkpoint_every=2)
        return replace(base, unet=UNetConfig(levels=3, base_features=4, max_features=8, norm="instance"),
                       synthesis=replace(base.synthesis, patch_sizes=(32,)))

    whole = train_synthetic(tmp_path / "whole", config(4), SMALL, device="cpu", ae_steps=1,
                            checkpoint=tmp_path / "whole.pt")
    checkpoint = tmp_path / "split.pt"
    train_synthetic(tmp_path / "half", config(2), SMALL, device="cpu", ae_steps=1, checkpoint=checkpoint)
    split = train_synthetic(tmp_path / "split", config(4), SMALL, device="cpu", ae_steps=1, checkpoint=checkpoint,
                            resume=True)
    first, second = load_bundle(whole), load_bundle(split)
    assert first.config["training"]["kind"] == "synthetic" and first.config["training"]["steps"] == 4
    assert first.config["training"]["generator"]["grid"] == 48 and "CPUs" in first.config["training"]["hardware"]
    assert first.qc_ae is not None
    for key, value in first.unet.state_dict().items():
        assert torch.equal(value, second.unet.state_dict()[key]), key


def test_the_synthetic_model_ships_and_is_chosen_by_name(tmp_path):
    from singlestrip_bids.model.bundle import load_bundle, resolve_bundle_path, shipped_bundle_path

    path = resolve_bundle_path("synthetic", tmp_path)
    assert path == shipped_bundle_path("synthetic")
    bundle = load_bundle(path)
    assert bundle.config["training"]["kind"] == "synthetic" and bundle.model_id.startswith("synthetic-")
    assert bundle.qc_ae is not None and bundle.voxel_size == 3.0
    assert resolve_bundle_path(tmp_path / "synthetic", tmp_path) == tmp_path / "synthetic"  # a folder stays one


def test_init_synthetic_starts_one_shot_training_from_the_synthetic_weights():
    from singlestrip_bids.model.bundle import load_bundle, shipped_bundle_path
    from singlestrip_bids.training.sl1 import TrainingConfig, initial_unet

    unet, description = initial_unet(TrainingConfig(), "synthetic")
    shipped = load_bundle(shipped_bundle_path("synthetic")).unet.state_dict()
    assert description == "synthetic"
    assert all(torch.equal(value, shipped[key]) for key, value in unet.state_dict().items())


def test_a_missing_shipped_model_is_one_line(tmp_path, monkeypatch):
    from singlestrip_bids.errors import UserError
    from singlestrip_bids.model import bundle

    monkeypatch.setitem(bundle.SHIPPED_MODELS, "synthetic", "no_such_model")
    with pytest.raises(UserError, match="the synthetic model is not shipped") as error:
        bundle.resolve_bundle_path("synthetic", tmp_path)
    assert "\n" not in str(error.value)


def test_the_training_command_checkpoints_and_exports_a_bundle_from_its_checkpoint(tmp_path, capsys):
    from singlestrip_bids.cli.train_synthetic import main
    from singlestrip_bids.model.bundle import load_bundle

    assert main([str(tmp_path / "m"), "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
    assert main([str(tmp_path / "m"), "--steps", "1", "--ae-steps", "1", "--nthreads", "1", "--device", "cpu"]) == 0
    assert (tmp_path / "m.ckpt.pt").is_file()
    first = load_bundle(tmp_path / "m").unet.state_dict()
    # the same steps again with --resume: nothing left to train, the checkpoint's weights are written
    assert main([str(tmp_path / "again"), "--steps", "1", "--resume", "--checkpoint", str(tmp_path / "m.ckpt.pt"),
                 "--ae-steps", "1", "--device", "cpu"]) == 0
    again = load_bundle(tmp_path / "again")
    assert again.config["training"]["kind"] == "synthetic"
    assert all(torch.equal(value, again.unet.state_dict()[key]) for key, value in first.items())


def test_the_training_command_continues_a_bundle_with_a_decaying_rate(tmp_path, capsys):
    from singlestrip_bids.cli.train_synthetic import main
    from singlestrip_bids.model.bundle import load_bundle, shipped_bundle_path

    assert main([str(tmp_path / "m"), "--learning-rate", "0"]) == 2
    assert "--learning-rate" in capsys.readouterr().err
    assert main([str(tmp_path / "m"), "--init", "synthetic", "--steps", "1", "--learning-rate", "1e-4",
                 "--final-learning-rate", "1e-6", "--ae-steps", "1", "--device", "cpu", "--random-seed", "1"]) == 0
    continued = load_bundle(tmp_path / "m")
    training = continued.config["training"]
    assert training["init"] == "synthetic" and training["steps"] == 1
    assert (training["learning_rate"], training["final_learning_rate"]) == (1e-4, 1e-6)
    shipped = load_bundle(shipped_bundle_path("synthetic")).unet.state_dict()
    moved = [key for key, value in continued.unet.state_dict().items() if not torch.equal(value, shipped[key])]
    assert moved  # one step from the shipped weights, not from random ones:
    assert max(float((continued.unet.state_dict()[key] - shipped[key]).abs().max()) for key in moved) < 1e-2
