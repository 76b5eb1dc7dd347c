"""Training the Dice estimator from the labeled example(s) only: synthetic images, their true masks,
and candidate masks with realistic failures; the estimator learns to outline the true mask."""

import numpy as np
import torch

from singlestrip_bids.transforms.failures import RandomFailures, RandomThresholdedPrediction, apply_failures

#: share of candidates that start from the U-Net's own prediction (cut at a random level) rather
#: than from the true mask
PREDICTION_PROBABILITY = 0.3
#: share of candidates that start from the prediction of an early snapshot of a U-Net trained from
#: random weights: the coarse, plausible-looking masks of a model that has not learned yet, which a
#: candidate-copying estimator would score far too high
EARLY_PROBABILITY = 0.15
#: the steps of that short training at which the snapshots are kept
EARLY_STEPS = (10, 20, 40)
LEARNING_RATE = 3e-4  #: from the U-Net's weights, decaying along a half cosine to FINAL_LEARNING_RATE
FINAL_LEARNING_RATE = 1e-5


class CandidateStream:
    """Batches of (image + candidate mask, true mask) from a synthesizer, one seeded generator.

    ``unet`` (eval mode, on the synthesizer's device): some candidates are its thresholded
    predictions of the synthetic image, and ``early`` (U-Nets likewise) those of undertrained
    models; failures are drawn on top or not.
    """

    def __init__(self, synthesizer, voxel_mm: float, *, seed: int = 0, unet=None, early=(), failures=None,
                 thresholds=None):
        self.synthesizer, self.voxel_mm, self.unet, self.early = synthesizer, float(voxel_mm), unet, list(early)
        self.failures = failures or RandomFailures()
        self.thresholds = thresholds or RandomThresholdedPrediction()
        self.rng = np.random.default_rng(seed)

    def predictor(self):
        """The U-Net whose prediction starts the next candidate, or None for the true mask."""
        draw = self.rng.uniform()
        if self.unet is not None and draw < PREDICTION_PROBABILITY:
            return self.unet
        if self.early and draw < PREDICTION_PROBABILITY + EARLY_PROBABILITY:
            return self.early[int(self.rng.integers(len(self.early)))]
        return None

    def candidate(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One candidate for the true ``mask`` (X, Y, Z) of the synthetic ``image`` (X, Y, Z)."""
        start, unet = mask, self.predictor()
        if unet is not None:
            with torch.no_grad():
                probability = torch.sigmoid(unet(image[None, None]).float())[0, 0]
            start = self.thresholds(self.rng)(probability)
        return apply_failures(self.failures(self.rng), start, image, self.voxel_mm)

    def batch(self, size: int):
        """Inputs (B, 2, X, Y, Z): image and candidate; targets (B, 1, X, Y, Z): the true masks."""
        images, masks, _ = self.synthesizer.batch(size)
        candidates = torch.stack([self.candidate(image[0], mask[0]) for image, mask in zip(images, masks)])
        return torch.cat([images, candidates[:, None]], dim=1), masks


def early_unets(unet, synthesizer, *, steps=EARLY_STEPS, seed: int = 0, device="cpu", precision: str = "auto") -> list:
    """Snapshots (eval mode, on ``device``) of a U-Net of ``unet``'s architecture trained from random
    weights (drawn from ``seed``) on ``synthesizer``'s pairs, after each of ``steps`` steps (SL-1's rate)."""
    from singlestrip_bids.model.unet import UNet
    from singlestrip_bids.training.loop import ProgressHook, SnapshotHook, Trainer
    from singlestrip_bids.training.sl1 import TrainingConfig

    if not steps:
        return []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = UNet(unet.config)
    snapshots = SnapshotHook(steps)
    Trainer(fresh, synthesizer.training_batch, steps=max(steps), lr=TrainingConfig().learning_rate, device=device,
            hooks=[ProgressHook(10, "early U-Net for the Dice estimator"), snapshots], precision=precision).run()
    return snapshots.snapshots


def train_estimator(sources, synthesis_config, *, voxel_mm: float, unet, steps: int = 300, batch_size: int = 1,
                    seed: int = 0, device="cpu", log_every: int = 25, precision: str = "auto",
                    early_steps=EARLY_STEPS):
    """Train a Dice estimator, from ``unet`` (the trained U-Net: the starting weights, and its
    thresholded predictions join the candidates), on synthesis from ``sources`` (as SL-1's:
    ``training.sl1.prepare_source``). ``voxel_mm``: the working grid. The predictions of an
    undertrained U-Net (:func:`early_unets`) after each of ``early_steps`` that is not beyond
    ``steps`` join the candidates too (so the extra training never outlasts the estimator's own).
    Returns ``(model on the CPU in eval mode, loss history)``."""
    from singlestrip_bids.model.estimator import estimator_from_unet
    from singlestrip_bids.synthesis.generator import Synthesizer
    from singlestrip_bids.training.loop import HistoryHook, ProgressHook, Trainer

    model = estimator_from_unet(unet)
    synthesizer = Synthesizer(sources, synthesis_config, seed=seed, device=device)
    early = early_unets(unet, synthesizer, steps=[s for s in early_steps if s <= steps], seed=seed, device=device,
                        precision=precision)
    stream = CandidateStream(synthesizer, voxel_mm, seed=seed + 1, unet=unet.to(device).eval(), early=early)
    history = HistoryHook()
    Trainer(model, stream.batch, steps=steps, batch_size=batch_size, lr=LEARNING_RATE, final_lr=FINAL_LEARNING_RATE,
            device=device, hooks=[ProgressHook(log_every, "Dice estimator"), history], precision=precision).run()
    unet.cpu()
    return model.cpu().eval(), history.losses
