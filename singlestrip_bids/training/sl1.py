"""One-shot training (SL-1): a U-Net from synthesis on ONE labeled image (METHOD.md §1–3)."""

import logging
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from singlestrip_bids.model.unet import UNetConfig
from singlestrip_bids.synthesis.generator import SynthesisConfig

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides a training run; stored in the bundle."""

    steps: int = 3000
    batch_size: int = 1
    learning_rate: float = 1e-3
    final_learning_rate: float | None = None  #: None: constant; else a half-cosine decay to it (loop.Trainer)
    voxel_size: float = 3.0  #: working grid, mm (CPU-sized; patches of 64–112 voxels span 192–336 mm)
    #: inference shows the network the head plus this margin (mm), as framed as the drawn patches
    head_margin_mm: float | None = 36.0
    n_brain_classes: int = 10
    n_head_classes: int = 6
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    precision: str = "auto"  #: forward pass in bf16 where the device computes it natively (model.device)
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(base_features=16, max_features=64, norm="instance"))
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        """Rebuild from :meth:`to_dict` output (e.g. a bundle's ``training``); unknown keys are ignored."""
        known = {f.name for f in fields(cls)} - {"unet", "synthesis"}
        kwargs = {key: value for key, value in values.items() if key in known}
        return cls(**kwargs, unet=UNetConfig(**values["unet"]),
                   synthesis=SynthesisConfig.from_dict(values["synthesis"]))


def prepare_source(image_img, mask_img, config: TrainingConfig, seed: int):
    """Conform an image and its brain mask to the working grid and fit the GMM class map.

    Returns ``(labels uint8 (X, Y, Z), mask bool (X, Y, Z), gmm summary dict, image float32 (X, Y, Z))``,
    a source of ``synthesis.generator.Synthesizer``.
    """
    from singlestrip_bids.io.conform import conform, conform_mask
    from singlestrip_bids.synthesis.gmm import fit_class_map

    image = conform(image_img, config.voxel_size, config.unet.multiple)
    mask = conform_mask(mask_img, config.voxel_size, config.unet.multiple)
    labels, summary = fit_class_map(image.data, mask, n_brain=config.n_brain_classes,
                                    n_head=config.n_head_classes, seed=seed)
    return labels, mask, summary, image.data


def train_unet(unet, sources, config: TrainingConfig, *, device, checkpoint: Path | None = None,
               resume: bool = False, seed: int | None = None, n_labeled: int | None = None):
    """Train ``unet`` in place on synthesis from ``sources`` [:func:`prepare_source`, …], of which the
    first ``n_labeled`` carry true labels and the rest pseudo-labels (None: all true).

    Returns the loss history.
    """
    from singlestrip_bids.synthesis.generator import Synthesizer

    seed = config.seed if seed is None else seed
    synth = Synthesizer(sources, config.synthesis, seed=seed, device=device, n_labeled=n_labeled)
    return train_on_stream(unet, synth, config, device=device, checkpoint=checkpoint, resume=resume)


def train_on_stream(unet, synth, config: TrainingConfig, *, device, checkpoint: Path | None = None,
                    resume: bool = False, name: str = "U-Net"):
    """Train ``unet`` in place on the pairs of ``synth`` (a ``synthesis.generator.Synthesizer``),
    checkpointing to ``checkpoint`` and resuming from it exactly (weights, optimiser, both random
    streams); ``name`` labels the progress records.
    Returns the loss history."""
    from singlestrip_bids.training.loop import CheckpointHook, HistoryHook, ProgressHook, Trainer

    history = HistoryHook()
    hooks = [ProgressHook(config.log_every, name), history]
    if checkpoint is not None:
        hooks.append(CheckpointHook(checkpoint, config.checkpoint_every))

    def set_state(state):
        synth.rng.bit_generator.state = state

    trainer = Trainer(unet, synth.training_batch, steps=config.steps, batch_size=config.batch_size,
                      lr=config.learning_rate, final_lr=config.final_learning_rate, device=device, hooks=hooks,
                      rng_state=lambda: synth.rng.bit_generator.state, set_rng_state=set_state,
                      precision=config.precision)
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        trainer.load_checkpoint(Path(checkpoint))
    trainer.run()
    unet.cpu()
    return history.losses


def initial_unet(config: TrainingConfig, init="scratch"):
    """The U-Net one-shot training starts from: random weights (``"scratch"``), a shipped model by
    name (``"default"``, ``"synthetic"``: ``model.bundle.SHIPPED_MODELS``) or the weights of any
    bundle folder; UserError if that bundle is absent or its architecture is not ``config.unet``.
    Returns ``(unet, description)``; the description goes into the bundle."""
    from singlestrip_bids.errors import UserError
    from singlestrip_bids.model.bundle import SHIPPED_MODELS, load_bundle, read_bundle_config, resolve_bundle_path
    from singlestrip_bids.model.unet import UNet

    if str(init) == "scratch":
        return UNet(config.unet), "scratch"
    shipped = str(init) in SHIPPED_MODELS
    path = resolve_bundle_path(str(init), None) if shipped else Path(init)
    found = read_bundle_config(path).get("unet", {}).get("config")
    if found != config.unet.to_dict():
        raise UserError(f"--init {init}: its U-Net ({found}) is not the one trained here ({config.unet.to_dict()})")
    bundle = load_bundle(path)
    return bundle.unet, str(init) if shipped else bundle.model_id


def train_sl1(image_img, mask_img, bundle_path, config: TrainingConfig = TrainingConfig(), *,
              device="auto", checkpoint: Path | None = None, resume: bool = False, name: str = "sl1",
              labeled: str = "", qc_ae=None, init="scratch", extra: dict | None = None):
    """Train SL-1 from one labeled image and write a bundle; returns ``(bundle_path, losses, source)``.

    ``labeled`` names the labeled example in the bundle's provenance; ``init`` is where the U-Net
    starts (:func:`initial_unet`); ``extra`` adds provenance (e.g. the sizing); ``source`` is the
    labeled example's :func:`prepare_source`, reused by self-training.
    """

    from singlestrip_bids.model.bundle import save_bundle
    from singlestrip_bids.model.device import resolve_device
    from singlestrip_bids.seeding import seed_everything

    device = resolve_device(device) if isinstance(device, str) else device
    seed_everything(config.seed)
    start = time.perf_counter()
    source = prepare_source(image_img, mask_img, config, config.seed)
    labels, mask, gmm, _ = source
    LOG.info("GMM class map: %d classes, brain %.0f mL on the working grid",
             int(labels.max()) + 1, mask.sum() * config.voxel_size**3 / 1000)
    unet, started_from = initial_unet(config, init)
    losses = train_unet(unet, [source], config, device=device, checkpoint=checkpoint, resume=resume)
    extra = {
        "training": {**config.to_dict(), "kind": "sl1", "labeled": labeled, "init": started_from,
                     "device": str(device),
                     "seconds": round(time.perf_counter() - start, 1),
                     "final_loss": float(np.mean(losses[-50:])) if losses else None},
        "gmm": [gmm],
        **(extra or {}),
    }
    save_bundle(bundle_path, name=name, unet=unet, voxel_size=config.voxel_size,
                head_margin_mm=config.head_margin_mm, qc_ae=qc_ae, extra=extra)
    return Path(bundle_path), losses, source
