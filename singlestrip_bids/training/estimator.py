"""Training the Dice estimator from the labeled example(s) only: synthetic images, their true masks,
and candidate masks with realistic failures whose true Dice is known."""

import numpy as np
import torch
import torch.nn.functional as F

from singlestrip_bids.metrics import dice
from singlestrip_bids.transforms.failures import RandomFailures, RandomThresholdedPrediction, apply_failures

#: share of candidates that start from the U-Net's own prediction (cut at a random level) when a
#: U-Net is given, rather than from the true mask
PREDICTION_PROBABILITY = 0.3


def estimator_loss(logits, dice_targets):
    """Binary cross-entropy of the estimated Dice (sigmoid of the logits) against the true Dice."""
    return F.binary_cross_entropy_with_logits(logits.float(), dice_targets)


class CandidateStream:
    """Batches of (image + candidate mask, true Dice) from a synthesizer, one seeded generator.

    ``unet`` (optional, eval mode, on the synthesizer's device): some candidates are its
    thresholded predictions of the synthetic image, with failures drawn on top or not.
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
        """Inputs (B, 2, X, Y, Z): image and candidate; targets (B,): the candidates' true Dice."""
        images, masks, _ = self.synthesizer.batch(size)
        inputs, targets = [], []
        for image, mask in zip(images, masks):
            candidate = self.candidate(image[0], mask[0])
            targets.append(dice(candidate.cpu().numpy() > 0.5, mask[0].cpu().numpy() > 0.5))
            inputs.append(torch.stack([image[0], candidate]))
        return torch.stack(inputs), torch.tensor(targets, dtype=torch.float32, device=images.device)


def train_estimator(sources, synthesis_config, *, voxel_mm: float, steps: int = 1000, batch_size: int = 4,
                    seed: int = 0, device="cpu", unet=None, learning_rate: float = 1e-3, log_every: int = 50,
                    config=None):
    """Train a Dice estimator on synthesis from ``sources`` [(labels, mask, gmm summary), …] (as SL-1).

    ``voxel_mm``: the working grid; ``unet``: the trained U-Net, whose thresholded predictions join
    the candidates. Returns ``(model on the CPU in eval mode, loss history)``.
    """
    from singlestrip_bids.model.estimator import DEFAULT_CONFIG, build_estimator
    from singlestrip_bids.synthesis.generator import Synthesizer
    from singlestrip_bids.training.loop import HistoryHook, ProgressHook, Trainer

    synthesizer = Synthesizer(sources, synthesis_config, seed=seed, device=device)
    stream = CandidateStream(synthesizer, voxel_mm, seed=seed + 1,
                             unet=None if unet is None else unet.to(device).eval())
    model = build_estimator(config or DEFAULT_CONFIG)
    history = HistoryHook()
    Trainer(model, stream.batch, steps=steps, batch_size=batch_size, lr=learning_rate, device=device,
            hooks=[ProgressHook(log_every, "Dice estimator"), history], loss=estimator_loss).run()
    if unet is not None:
        unet.cpu()
    return model.cpu().eval(), history.losses
