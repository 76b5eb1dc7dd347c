"""The Dice estimator: its network, the candidate stream it learns from, its training and its score."""

import nibabel as nib
import pytest
import torch
from helpers_bids import DATA_DIR

from singlestrip_bids.io.conform import conform, conform_mask
from singlestrip_bids.model.estimator import DEFAULT_CONFIG, build_estimator
from singlestrip_bids.model.unet import UNet, UNetConfig
from singlestrip_bids.qc.estimator import estimate_dice
from singlestrip_bids.synthesis.generator import SynthesisConfig, Synthesizer
from singlestrip_bids.training.estimator import CandidateStream, train_estimator
from singlestrip_bids.training.sl1 import TrainingConfig, prepare_source

pytestmark = pytest.mark.skipif(not DATA_DIR.is_dir(), reason="../shared/data is absent")
HEAD = "mrtrix_scripttest_sub01/sub-01_T1w.nii.gz"
MASK = "mrtrix_scripttest_sub01/sub-01_brainmask.nii.gz"
TINY = TrainingConfig(voxel_size=4.0, n_brain_classes=3, n_head_classes=2, synthesis=SynthesisConfig(patch_sizes=(32,)))
SMALL = {**DEFAULT_CONFIG, "features": [4, 8, 8]}


@pytest.fixture(scope="module")
def source():
    torch.set_num_threads(1)
    return prepare_source(nib.load(DATA_DIR / HEAD), nib.load(DATA_DIR / MASK), TINY, 0)


def test_network_reads_image_and_mask_of_any_frame_size():
    model = build_estimator(SMALL).eval()
    assert model.config == SMALL
    with torch.no_grad():
        assert model(torch.rand(2, 2, 32, 48, 40)).shape == (2,) and model(torch.rand(1, 2, 64, 64, 64)).shape == (1,)


def test_candidates_carry_their_true_dice(source):
    stream = CandidateStream(Synthesizer([source], TINY.synthesis, seed=0), TINY.voxel_size, seed=1,
                             unet=UNet(UNetConfig(levels=3, base_features=4, max_features=8)).eval())
    targets = []
    for _ in range(6):
        inputs, dice_targets = stream.batch(3)
        assert inputs.shape == (3, 2, 32, 32, 32) and dice_targets.shape == (3,)
        assert set(torch.unique(inputs[:, 1]).tolist()) <= {0.0, 1.0}
        targets += dice_targets.tolist()
    assert min(targets) < 0.9 and max(targets) == 1.0  # perfect candidates and damaged ones
    first = CandidateStream(Synthesizer([source], TINY.synthesis, seed=0), TINY.voxel_size, seed=1)
    again = CandidateStream(Synthesizer([source], TINY.synthesis, seed=0), TINY.voxel_size, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first.batch(2), again.batch(2)))  # one seed, one stream


def test_training_is_seeded_and_the_score_is_a_dice(source):
    torch.manual_seed(0)
    first, losses = train_estimator([source], TINY.synthesis, voxel_mm=TINY.voxel_size, steps=4, batch_size=2,
                                    seed=5, config=SMALL, log_every=2)
    torch.manual_seed(0)
    second, _ = train_estimator([source], TINY.synthesis, voxel_mm=TINY.voxel_size, steps=4, batch_size=2,
                                seed=5, config=SMALL, log_every=2)
    assert len(losses) == 4 and not first.training
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    image = conform(nib.load(DATA_DIR / HEAD), TINY.voxel_size, 16).data
    mask = conform_mask(nib.load(DATA_DIR / MASK), TINY.voxel_size, 16)
    score = estimate_dice(first, image, mask, head_margin_voxels=4, size_multiple=16)
    assert 0.0 < score < 1.0
