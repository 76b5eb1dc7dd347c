"""Training the Dice estimator from the labeled example(s) only: synthetic images, their true masks,
and candidate masks with realistic failures; the estimator learns to outline the true mask."""

import numpy as np
import torch

from singlestrip_bids.transforms.failures import RandomFailures, RandomThresholdedPrediction, apply_failures

#: share of candidates that start from the U-Net's own prediction (cut at a random level) rather
#: than from the true mask
PREDICTION_PROBABILITY = 0.3
LEARNING_RATE = 3e-4  #: from the U-Net's weights, decaying along a half cosine to FINAL_LEARNING_RATE
FINAL_LEARNING_RATE = 1e-5


class CandidateStream:
    """Batches of (image + candidate mask, true mask) from a synthesizer, one seeded generator.

    ``unet`` (eval mode, on the synthesizer's device): some candidates are its thresholded
    predictions of the synthetic image, with failures drawn on top or not.
    """

    def __init__(self, synthesizer, voxel_mm: float, *, seed: int = 0, unet=None, failures=None, thresholds=None):
        self.synthesizer, self.voxel_mm, self.unet = synthesizer, float(voxel_mm), unet
        self.failures = failures or RandomFailures()
        self.thresholds = thresholds or RandomThresholdedPrediction()
        self.rng = np.random.default_rng(seed)

    def candidate(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One candidate for the true ``mask`` (X, Y, Z) of the synthetic ``image`` (X, Y, Z)."""
        start = mask
        if self.unet is not None and self.rng.uniform() < PREDICTION_PROBABILITY:
            with torch.no_grad():
                probability = torch.sigmoid(self.unet(image[None, None]).float())[0, 0]
            start = self.thresholds(self.rng)(probability)
        return apply_failures(self.failures(self.rng), start, image, self.voxel_mm)

    def batch(self, size: int):
        """Inputs (B, 2, X, Y, Z): image and candidate; targets (B, 1, X, Y, Z): the true masks."""
        images, masks, _ = self.synthesizer.batch(size)
        candidates = torch.stack([self.candidate(image[0], mask[0]) for image, mask in zip(images, masks)])
        return torch.cat([images, candidates[:, None]], dim=1), masks


def train_estimator(sources, synthesis_config, *, voxel_mm: float, unet, steps: int = 300, batch_size: int = 1,
                    seed: int = 0, device="cpu", log_every: int = 25, precision: str = "auto"):
    """Train a Dice estimator, from ``unet`` (the trained U-Net: the starting weights, and its
    thresholded predictions join the candidates), on synthesis from ``sources`` (as SL-1's:
    ``training.sl1.prepare_source``). ``voxel_mm``: the working grid.
    Returns ``(model on the CPU in eval mode, loss history)``."""
    from singlestrip_bids.model.estimator import estimator_from_unet
    from singlestrip_bids.synthesis.generator import Synthesizer
    from singlestrip_bids.training.loop import HistoryHook, ProgressHook, Trainer

    model = estimator_from_unet(unet)
    synthesizer = Synthesizer(sources, synthesis_config, seed=seed, device=device)
    stream = CandidateStream(synthesizer, voxel_mm, seed=seed + 1, unet=unet.to(device).eval())
    history = HistoryHook()
    Trainer(model, stream.batch, steps=steps, batch_size=batch_size, lr=LEARNING_RATE, final_lr=FINAL_LEARNING_RATE,
            device=device, hooks=[ProgressHook(log_every, "Dice estimator"), history], precision=precision).run()
    unet.cpu()
    return model.cpu().eval(), history.losses
