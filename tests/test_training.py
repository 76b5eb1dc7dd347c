"""Real (tiny) training on synthesis from a real labeled head: the loss falls, bundles round-trip."""

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers_bids import DATA_DIR

from singlestrip_bids.inference.predict import Predictor
from singlestrip_bids.io.conform import conform
from singlestrip_bids.model.bundle import load_bundle
from singlestrip_bids.model.unet import UNet, UNetConfig
from singlestrip_bids.synthesis.generator import SynthesisConfig
from singlestrip_bids.training.loop import CheckpointHook, Trainer
from singlestrip_bids.training.sl1 import TrainingConfig, prepare_source, train_sl1

pytestmark = pytest.mark.skipif(not DATA_DIR.is_dir(), reason="../shared/data is absent")

TINY = TrainingConfig(steps=30, learning_rate=3e-3, voxel_size=4.0, n_brain_classes=3, n_head_classes=2,
                      checkpoint_every=10, log_every=10, unet=UNetConfig(levels=3, base_features=4, max_features=8),
                      synthesis=SynthesisConfig(patch_sizes=(32,)))
HEAD = "mrtrix_scripttest_sub01/sub-01_T1w.nii.gz"
MASK = "mrtrix_scripttest_sub01/sub-01_brainmask.nii.gz"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_loss_falls_and_the_bundle_round_trips(tmp_path):
    image, mask = nib.load(DATA_DIR / HEAD), nib.load(DATA_DIR / MASK)
    path, losses, (labels, working_mask, gmm, _) = train_sl1(image, mask, tmp_path / "model", TINY, device="cpu",
                                                          labeled="mrtrix_scripttest_sub01")
    assert len(losses) == TINY.steps
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.02, losses
    assert labels.shape == working_mask.shape and labels.max() == 4
    bundle = load_bundle(path)
    assert bundle.config["training"]["steps"] == 30 and bundle.config["gmm"] == [gmm]
    assert TrainingConfig.from_dict(bundle.config["training"]) == TINY  # the bundle says how it was trained
    data = conform(image, bundle.voxel_size, bundle.size_multiple).data
    first = Predictor(bundle, "cpu").predict_probability(data)
    second = Predictor(load_bundle(path), "cpu").predict_probability(data)
    assert np.array_equal(first, second)


def test_training_is_reproducible_with_the_seed_and_resumes_exactly(tmp_path):
    image, mask = nib.load(DATA_DIR / HEAD), nib.load(DATA_DIR / MASK)
    labels, working_mask, _, _ = prepare_source(image, mask, TINY, seed=0)
    from singlestrip_bids.synthesis.generator import Synthesizer

    def run(steps, checkpoint=None, resume_from=None):
        torch.manual_seed(0)
        synth = Synthesizer([(labels, working_mask)], TINY.synthesis, seed=0)

        def set_state(state):
            synth.rng.bit_generator.state = state

        hooks = [CheckpointHook(checkpoint, every=4)] if checkpoint else []
        trainer = Trainer(UNet(TINY.unet), lambda n: synth.batch(n)[:2], steps=steps, lr=1e-3, hooks=hooks,
                          rng_state=lambda: synth.rng.bit_generator.state, set_rng_state=set_state)
        if resume_from:
            trainer.load_checkpoint(resume_from)
        return trainer.run().state_dict()

    straight = run(8)
    assert all(torch.equal(a, b) for a, b in zip(straight.values(), run(8).values()))
    run(4, checkpoint=tmp_path / "ckpt.pt")
    resumed = run(8, resume_from=tmp_path / "ckpt.pt")
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(straight.values(), resumed.values()))


def test_learning_rate_decays_along_a_half_cosine_when_asked():
    model = torch.nn.Conv3d(1, 1, 1)
    batch = lambda n: (torch.ones(n, 1, 2, 2, 2), torch.ones(n, 1, 2, 2, 2))  # noqa: E731
    constant = Trainer(model, batch, steps=5, lr=1e-3)
    assert [constant.learning_rate(step) for step in (1, 3, 5)] == [1e-3] * 3
    decayed = Trainer(model, batch, steps=5, lr=1e-3, final_lr=1e-5)
    rates = [decayed.learning_rate(step) for step in range(1, 6)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-5)
    assert rates[2] == pytest.approx((1e-3 + 1e-5) / 2)  # half way down at the middle step
    assert all(a > b for a, b in zip(rates, rates[1:]))
    decayed.run()
    assert decayed.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)  # the last step ran at the final rate
