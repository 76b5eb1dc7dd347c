"""The Dice estimator: its network, the candidate stream it learns from, its training and its score."""

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers_bids import DATA_DIR

from singlestrip_bids.io.conform import conform, conform_mask
from singlestrip_bids.model.estimator import build_estimator, estimated_dice, estimator_from_unet
from singlestrip_bids.model.unet import UNet, UNetConfig
from singlestrip_bids.qc.estimator import estimate_dice
from singlestrip_bids.synthesis.generator import SynthesisConfig, Synthesizer
from singlestrip_bids.training.estimator import EARLY_PROBABILITY, CandidateStream, early_unets, train_estimator
from singlestrip_bids.training.sl1 import TrainingConfig, prepare_source

pytestmark = pytest.mark.skipif(not DATA_DIR.is_dir(), reason="../shared/data is absent")
HEAD = "mrtrix_scripttest_sub01/sub-01_T1w.nii.gz"
MASK = "mrtrix_scripttest_sub01/sub-01_brainmask.nii.gz"
TINY = TrainingConfig(voxel_size=4.0, n_brain_classes=3, n_head_classes=2, synthesis=SynthesisConfig(patch_sizes=(32,)))
SMALL_UNET = UNetConfig(levels=3, base_features=4, max_features=8, norm="instance")


@pytest.fixture(scope="module")
def source():
    torch.set_num_threads(1)
    return prepare_source(nib.load(DATA_DIR / HEAD), nib.load(DATA_DIR / MASK), TINY, 0)


def test_the_estimator_starts_as_the_unet_and_scores_by_agreement_with_it():
    """Before any training the candidate channel is silent: the outline is the U-Net's mask, so a
    candidate equal to it scores 1 and an empty one 0; the config rebuilds the same network."""
    torch.manual_seed(0)
    unet = UNet(SMALL_UNET).eval()
    model = estimator_from_unet(unet).eval()
    assert build_estimator(model.config).load_state_dict(model.state_dict())
    image = torch.rand(1, 1, 32, 48, 40)
    with torch.no_grad():
        unet_logits = unet(image)
        outline = (unet_logits > 0).float()
        for candidate in (outline, 1 - outline):
            logits = model(torch.cat([image, candidate], dim=1))
            assert torch.allclose(logits, unet_logits, atol=1e-5)
    assert outline.sum() > 0
    assert estimated_dice(unet_logits, outline).item() == 1.0
    assert estimated_dice(unet_logits, torch.zeros_like(outline)).item() == 0.0
    with pytest.raises(KeyError):
        build_estimator({"kind": "dice_estimator", "features": [4, 8]})


def test_candidates_are_damaged_masks_and_the_targets_the_true_ones(source):
    stream = CandidateStream(Synthesizer([source], TINY.synthesis, seed=0), TINY.voxel_size, seed=1,
                             unet=UNet(SMALL_UNET).eval())
    dices = []
    for _ in range(6):
        inputs, masks = stream.batch(3)
        assert inputs.shape == (3, 2, 32, 32, 32) and masks.shape == (3, 1, 32, 32, 32)
        assert set(torch.unique(inputs[:, 1]).tolist()) <= {0.0, 1.0}
        dices += estimated_dice(masks * 2 - 1, inputs[:, 1:]).tolist()
    assert min(dices) < 0.9 and max(dices) == 1.0  # perfect candidates and damaged ones
    first = CandidateStream(Synthesizer([source], TINY.synthesis, seed=0), TINY.voxel_size, seed=1)
    again = CandidateStream(Synthesizer([source], TINY.synthesis, seed=0), TINY.voxel_size, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first.batch(2), again.batch(2)))  # one seed, one stream


class EverywhereUNet(torch.nn.Module):
    """An 'undertrained U-Net' that calls every voxel brain."""

    def forward(self, x):
        return torch.full_like(x, 10.0)


def test_some_candidates_are_the_masks_of_an_undertrained_unet(source):
    def full_candidates(early):
        stream = CandidateStream(Synthesizer([source], TINY.synthesis, seed=0), TINY.voxel_size, seed=1, early=early)
        inputs, masks = stream.batch(40)
        assert (masks.mean(dim=(1, 2, 3, 4)) < 0.9).all()
        return int((inputs[:, 1].mean(dim=(1, 2, 3)) > 0.9).sum())

    assert full_candidates(()) == 0
    assert 0.25 * 40 * EARLY_PROBABILITY <= full_candidates([EverywhereUNet()]) <= 2.5 * 40 * EARLY_PROBABILITY


def test_early_unets_are_seeded_snapshots_of_one_short_training(source):
    unet = UNet(SMALL_UNET)
    snapshots = early_unets(unet, Synthesizer([source], TINY.synthesis, seed=0), steps=(1, 3), seed=2)
    again = early_unets(unet, Synthesizer([source], TINY.synthesis, seed=0), steps=(1, 3), seed=2)
    assert len(snapshots) == 2 and not any(s.training for s in snapshots)
    first, last = (s.state_dict()["down.0.0.weight"] for s in snapshots)
    assert not torch.equal(first, last)  # two more steps changed the weights
    assert all(torch.equal(a, b) for s, t in zip(snapshots, again) for a, b in zip(s.state_dict().values(),
                                                                                    t.state_dict().values()))
    assert early_unets(unet, Synthesizer([source], TINY.synthesis, seed=0), steps=()) == []


def test_training_is_seeded_and_the_score_is_a_dice(source):
    torch.manual_seed(0)
    unet = UNet(SMALL_UNET)
    first, losses = train_estimator([source], TINY.synthesis, voxel_mm=TINY.voxel_size, unet=unet, steps=4,
                                    batch_size=2, seed=5, log_every=2, early_steps=(1, 2, 8))
    second, _ = train_estimator([source], TINY.synthesis, voxel_mm=TINY.voxel_size, unet=unet, steps=4,
                                batch_size=2, seed=5, log_every=2, early_steps=(1, 2, 8))
    assert len(losses) == 4 and not first.training
    assert not torch.equal(first.state_dict()["down.0.0.weight"][:, 1], torch.zeros_like(
        first.state_dict()["down.0.0.weight"][:, 1]))  # it learned to read the candidate
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    image = conform(nib.load(DATA_DIR / HEAD), TINY.voxel_size, 16).data
    mask = conform_mask(nib.load(DATA_DIR / MASK), TINY.voxel_size, 16)
    assert 0.0 <= estimate_dice(first, image, mask, head_margin_voxels=4, size_multiple=16) <= 1.0


class EchoEstimator(torch.nn.Module):
    """Outlines exactly the candidate it is given (``sign`` 1), or nothing at all (``sign`` −1)."""

    def __init__(self, sign=1):
        super().__init__()
        self.sign = sign

    def forward(self, x):
        return (x[:, 1:] * 2 - 1) if self.sign > 0 else -torch.ones_like(x[:, 1:])


def test_the_score_is_the_dice_against_the_outline_and_voxels_outside_the_frame_count_as_wrong():
    image = conform(nib.load(DATA_DIR / HEAD), TINY.voxel_size, 16).data
    mask = conform_mask(nib.load(DATA_DIR / MASK), TINY.voxel_size, 16)
    assert estimate_dice(EchoEstimator(), image, mask, head_margin_voxels=2, size_multiple=16) == 1.0
    assert estimate_dice(EchoEstimator(-1), image, mask, head_margin_voxels=2, size_multiple=16) == 0.0
    stray = mask.copy()
    stray[0, 0, 0] = True  # air in a corner, outside the head's frame
    assert not mask[0, 0, 0] and image[0, 0, 0] <= image.min() + 1e-3
    inside = float(mask.sum())
    score = estimate_dice(EchoEstimator(), image, stray, head_margin_voxels=2, size_multiple=16)
    assert score == pytest.approx(2 * inside / (2 * inside + 1))


def test_masks_that_miss_the_brain_are_flagged_and_the_reference_passes():
    """The estimator started from the shipped U-Net, on a real head it never saw: its reference mask
    passes (≥ 0.9), an empty mask, a mask of the whole head and another subject's brain mask fail."""
    from singlestrip_bids.metrics import dice
    from singlestrip_bids.model.bundle import default_bundle_path, load_bundle

    fs = DATA_DIR / "fs_training_t1"
    bundle = load_bundle(default_bundle_path())
    estimator = estimator_from_unet(bundle.unet)
    image = conform(nib.load(fs / "sub-02" / "T1.mgz"), bundle.voxel_size, bundle.size_multiple).data
    reference = conform_mask(nib.load(fs / "sub-02" / "brainmask_bin.nii.gz"), bundle.voxel_size, bundle.size_multiple)
    other = conform_mask(nib.load(fs / "sub-05" / "brainmask_bin.nii.gz"), bundle.voxel_size, bundle.size_multiple)
    head = image > 0.1 * np.percentile(image, 99)
    threshold = estimator.config["qc_threshold"]
    assert threshold == 0.9
    scores = {name: estimate_dice(estimator, image, mask, head_margin_voxels=bundle.head_margin_voxels,
                                  size_multiple=bundle.size_multiple)
              for name, mask in {"reference": reference, "empty": np.zeros_like(reference), "head": head,
                                 "other subject": other}.items()}
    assert scores["reference"] >= threshold, scores
    assert all(scores[name] < threshold for name in ("empty", "head", "other subject")), scores
    assert dice(other, reference) < 0.8 and dice(head, reference) < 0.8  # they are wrong masks indeed
