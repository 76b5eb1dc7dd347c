"""PUMBA mode: a U-Net trained on purely synthetic heads (``synthesis.shapes``), no real image read."""

import logging
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from singlestrip_bids.synthesis.generator import SynthesisConfig
from singlestrip_bids.synthesis.shapes import RandomSyntheticHead, SyntheticHead
from singlestrip_bids.training.sl1 import TrainingConfig
from singlestrip_bids.transforms.field_of_view import RandomAirClutter
from singlestrip_bids.transforms.spatial import RandomSpatial

LOG = logging.getLogger(__name__)

#: the synthesis of the one-shot stream, with a smaller translation (the synthetic heads are drawn
#: centred, and small ones would leave the patch) and less clutter (their air is the whole grid)
SYNTHETIC_SYNTHESIS = replace(SynthesisConfig(), spatial=RandomSpatial(translation=20.0),
                              air_clutter=RandomAirClutter(probability=0.25), source_contrast_probability=0.0)
#: the shape the QC autoencoder of the synthetic bundle learns: a mid-sized, gently folded brain
QC_HEAD = SyntheticHead(radius=26.0, elongation=(0.9, 1.2, 0.93), lobe=0.45, fold_amplitude=1.0, seed=1)


def synthetic_config(*, steps: int = 20000, seed: int = 0, **overrides) -> TrainingConfig:
    """The training configuration of the synthetic model: the group level's U-Net and working grid."""
    return replace(TrainingConfig(), steps=steps, seed=seed, synthesis=SYNTHETIC_SYNTHESIS, **overrides)


def hardware() -> str:
    """What trained it, in words (stored in the bundle)."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {gpu}"


def train_synthetic(bundle_path, config: TrainingConfig, heads: RandomSyntheticHead | None = None, *,
                    device, checkpoint: Path | None = None, resume: bool = False, ae_steps: int = 1500,
                    name: str = "synthetic", init="scratch") -> Path:
    """Train the synthetic U-Net and its QC autoencoder (on :data:`QC_HEAD`'s mask) and write a bundle
    whose ``training.kind`` is ``"synthetic"``; ``heads``: the generator's ranges (None: the defaults);
    ``init``: where the U-Net starts (``training.sl1.initial_unet``: scratch, a shipped name or a bundle).
    Resumes from ``checkpoint`` when asked."""
    from singlestrip_bids.model.bundle import save_bundle
    from singlestrip_bids.seeding import seed_everything
    from singlestrip_bids.synthesis.shape_stream import ShapeSynthesizer
    from singlestrip_bids.training.autoencoder import train_autoencoder
    from singlestrip_bids.training.sl1 import initial_unet, train_on_stream

    heads = heads or RandomSyntheticHead()
    seed_everything(config.seed)
    start = time.perf_counter()
    unet, started_from = initial_unet(config, init)
    synth = ShapeSynthesizer(heads, config.synthesis, seed=config.seed, device=device)
    losses = train_on_stream(unet, synth, config, device=device, checkpoint=checkpoint, resume=resume,
                             name="synthetic U-Net")
    LOG.info("training the QC autoencoder on a synthetic brain mask (%d steps)", ae_steps)
    qc_ae, _ = train_autoencoder(QC_HEAD()[1].numpy(), steps=ae_steps, seed=config.seed, device=device,
                                 voxel_size=config.voxel_size)
    extra = {"training": {**config.to_dict(), "kind": "synthetic", "init": started_from, "generator": heads.to_dict(),
                          "qc_head": QC_HEAD.to_dict(), "device": str(device), "hardware": hardware(),
                          "seconds_this_run": round(time.perf_counter() - start, 1),
                          "final_loss": float(np.mean(losses[-200:])) if losses else None}}
    return save_bundle(bundle_path, name=name, unet=unet, voxel_size=config.voxel_size,
                       head_margin_mm=config.head_margin_mm, qc_ae=qc_ae, extra=extra)
