"""The group level as named stages over one :class:`GroupRun`; ``benchmarks/paper.py`` composes the same.

``start_group_run`` (sizes from the labeled example) → ``train_qc_network`` → ``train_one_shot`` →
``train_dice_estimator`` (the two QC stages live in ``training.qc_networks``) → per round
``score_and_rank`` + ``self_training_round`` → ``write_group_outputs``; :func:`run_group_level` runs
them all. Outputs under ``output_dir``:

- ``models/round-0/`` (SL-1), ``models/round-N/`` (self-training round N) and ``models/final/`` (a copy
  of the round whose masks of the unlabeled images score best on average, named in
  ``models/selection.json``; the participant level picks it up): model bundles with the QC autoencoder
  and the Dice estimator;
  each self-training round also holds ``ranking.tsv`` (its pseudo-labels, best first);
- ``models/losses.json``: the training losses of the autoencoder, SL-1 and every round;
- ``group_<suffix>.tsv`` (first column ``bids_name``; one row per image and round),
  ``group_<suffix>.html`` and the figures it shows under ``figures/``.
"""

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from singlestrip_bids.io.atomic import atomic_copy_folder, atomic_write_json, atomic_write_tsv
from singlestrip_bids.training.qc_networks import QCNetworks, train_dice_estimator, train_qc_network
from singlestrip_bids.training.self_training import bids_name
from singlestrip_bids.training.sl1 import TrainingConfig

LOG = logging.getLogger(__name__)
MAX_TOP_K = 100  #: cap on --top-k: each kept image is one more synthesis source held in memory
#: SL-1 steps when it starts from a trained bundle (mouse fold 1: 0.923 held-out Dice at 500 steps from
#: the shipped model against 0.728 from scratch; docs/benchmarks.md); from scratch: TrainingConfig's 3000
WARM_START_STEPS = 500
#: a warm start's rate falls along a half cosine from 1e-3 to this at its last step (mouse folds 2 and 3
#: chose it: 0.958 and 0.881 held-out Dice at step 500 against 0.854 and 0.784 at a constant rate; folds
#: 4 and 5 then 0.954 and 0.893 against 0.878 and 0.872); from scratch the rate stays constant, as the
#: shipped model was trained
WARM_START_FINAL_LEARNING_RATE = 1e-5
#: fine-tuning of a self-training round: mouse fold 1 (docs/benchmarks.md) went from 0.884 (SL-1) to 0.904
#: held-out Dice with 500 steps at 1e-4, where SL-1's 1e-3 lost 0.05 in the same round
SSL_STEPS = 500
SSL_LEARNING_RATE = 1e-4
#: share of SL-1's and self-training's pairs that show a source's real image instead of a painting: held-out
#: SL-1 Dice on the mouse folds 0.948 -> 0.961 (fold 1, which chose it), 0.941 -> 0.965, 0.890 -> 0.931 and
#: 0.890 -> 0.919 (folds 2, 3 and 5, which chose nothing; docs/benchmarks.md); 0 paints every pair
REAL_IMAGE_PROBABILITY = 0.5
#: off by default: trained with 1000 steps of 2 on fs_training_t1/sub-01, it followed the true Dice of
#: graded masks worse than AE-QC (docs/qc.md); ``--qc-estimator-steps N`` trains one
ESTIMATOR_STEPS = 0


def one_shot_config(init: str, *, seed: int = 0, steps: int | None = None,
                    real_image_probability: float | None = None) -> TrainingConfig:
    """SL-1's training configuration for a start ``init`` ("scratch", "default", "synthetic" or a
    bundle): from scratch TrainingConfig's (3000 steps, constant rate); from a trained bundle
    :data:`WARM_START_STEPS` steps whose rate decays to :data:`WARM_START_FINAL_LEARNING_RATE`; either
    way :data:`REAL_IMAGE_PROBABILITY` of the pairs show a real image. ``steps`` overrides the length,
    ``real_image_probability`` that share."""
    if str(init) == "scratch":
        config = TrainingConfig(seed=seed)
    else:
        config = TrainingConfig(seed=seed, steps=WARM_START_STEPS, final_learning_rate=WARM_START_FINAL_LEARNING_RATE)
    if real_image_probability is None:
        real_image_probability = REAL_IMAGE_PROBABILITY
    config = replace(config, synthesis=replace(config.synthesis, real_image_probability=real_image_probability))
    return replace(config, steps=steps) if steps else config


@dataclass(frozen=True)
class GroupSettings:
    """What the group level does besides where it reads and writes."""

    training: TrainingConfig = field(default_factory=TrainingConfig)
    qc_ae: str = "2d"
    ae_steps: int = 1500
    ae_architecture: dict | None = None  #: overrides of qc.autoencoder.DEFAULTS (e.g. smaller boxes)
    top_k: int = 10
    rounds: int = 1
    ranking: str = "ae"
    from_scratch: bool = False
    device: str = "auto"
    resume: bool = False
    #: derive the working grid, patches, margin and QC box from the labeled example
    #: (``training.sizing``); False keeps ``training`` and ``ae_architecture`` as given
    derive_sizes: bool = True
    working_voxel_size: float | None = None  #: with ``derive_sizes``: a voxel size (mm) that wins
    init: str = "default"  #: where SL-1 starts: "scratch", "default" (the shipped model) or a bundle
    ssl_steps: int | None = None  #: fine-tuning steps per self-training round (None: SL-1's steps)
    ssl_learning_rate: float = SSL_LEARNING_RATE  #: fine-tuning learning rate
    #: None: the fine-tuning rate stays constant; a value: it falls along a half cosine to it
    ssl_final_learning_rate: float | None = None
    estimator_steps: int = ESTIMATOR_STEPS  #: training steps of the Dice estimator (0: none)
    #: voxels either side of a pseudo-label's edge left out of the fine-tuning loss
    #: (``synthesis.generator.SynthesisConfig.pseudo_label_band``)
    pseudo_label_band: int = 0


@dataclass
class GroupRun:
    """One group run: its inputs, its sized training config, and the losses of every phase."""

    labeled_image: Path
    labeled_mask: Path
    unlabeled: list
    output_dir: Path
    work_dir: Path
    settings: GroupSettings
    config: TrainingConfig  #: ``settings.training`` with the derived sizes
    ae_architecture: dict
    ae_augmentation: dict
    sizing: dict | None
    device: object
    labeled_volume_ml: float | None = None  #: the labeled brain (native grid): pseudo-labels far from it are not used
    losses: dict = field(default_factory=dict)

    @property
    def models(self) -> Path:
        return self.output_dir / "models"

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def ssl_config(self) -> TrainingConfig:
        """The config of a fine-tuning round: SL-1's, with the self-training steps and learning rate
        (constant by default, as measured on mouse fold 1) and the pseudo-labels' edge band."""
        settings = self.settings
        synthesis = replace(self.config.synthesis, pseudo_label_band=settings.pseudo_label_band)
        return replace(self.config, steps=settings.ssl_steps or self.config.steps, synthesis=synthesis,
                       learning_rate=settings.ssl_learning_rate, final_learning_rate=settings.ssl_final_learning_rate)


@dataclass
class OneShot:
    """The SL-1 model: its bundle, and the labeled example's ``(labels, mask, gmm)`` on the working grid."""

    bundle: Path
    source: tuple


def start_group_run(labeled_image, labeled_mask, images, output_dir, work_dir,
                    settings: GroupSettings = GroupSettings()) -> GroupRun:
    """The run object: sizes derived from the labeled mask (unless ``settings.derive_sizes`` is off),
    the device resolved, and ``images`` less the labeled one as the unlabeled set."""
    import numpy as np

    from singlestrip_bids.io.nifti import load_image, mask_volume_ml
    from singlestrip_bids.model.device import resolve_device
    from singlestrip_bids.training.sizing import apply_sizing, derive_sizing

    config, architecture, augmentation, sizing = settings.training, dict(settings.ae_architecture or {}), {}, None
    if settings.derive_sizes:
        derived = derive_sizing(load_image(labeled_mask), voxel_size=settings.working_voxel_size,
                                multiple=config.unet.multiple)
        config, sizing = apply_sizing(config, derived), derived.to_dict()
        architecture = {**derived.ae_architecture(settings.qc_ae), **architecture}
        augmentation = {"shift_mm": derived.ae_shift_mm}
        LOG.info("sizes from the labeled brain (%.0f mm across): %.3g mm voxels, patches %s, margin %.3g mm",
                 derived.brain_extent_mm, derived.voxel_size, "/".join(map(str, derived.patch_sizes)),
                 derived.head_margin_mm)
    unlabeled = [Path(path) for path in images if Path(path).resolve() != Path(labeled_image).resolve()]
    mask_img = load_image(labeled_mask)
    volume_ml = mask_volume_ml(np.asanyarray(mask_img.dataobj) > 0, mask_img.affine)
    return GroupRun(Path(labeled_image), Path(labeled_mask), unlabeled, Path(output_dir).absolute(),
                    Path(work_dir).absolute() / "singlestrip_group", settings, config, architecture, augmentation,
                    sizing, resolve_device(settings.device), volume_ml)


def train_one_shot(run: GroupRun, qc: QCNetworks, *, folder: Path | None = None) -> OneShot:
    """SL-1 on synthesis from the labeled example, saved to ``folder`` (default ``models/round-0``)."""
    from singlestrip_bids.io.nifti import load_image
    from singlestrip_bids.training.sl1 import train_sl1

    init = run.settings.init
    LOG.info("SL-1: training the U-Net on synthesis from %s (%d steps, from %s)", bids_name(run.labeled_image),
             run.config.steps, init)
    bundle, run.losses["round-0"], source = train_sl1(
        load_image(run.labeled_image), load_image(run.labeled_mask), folder or run.models / "round-0", run.config,
        device=run.device, checkpoint=run.work_dir / "round-0.ckpt", resume=run.settings.resume, name="sl1",
        labeled=bids_name(run.labeled_image), qc_ae=qc.autoencoder, init=init,
        extra={"sizing": run.sizing} if run.sizing else None)
    return OneShot(bundle, source)


def score_and_rank(run: GroupRun, bundle, round_number: int, top_k: int, *, tta: bool | None = None) -> list:
    """Strip every unlabeled image with ``bundle``, score and rank the masks; the ``top_k`` best are selected."""
    from singlestrip_bids.training.self_training import predict_pseudo_labels, rank_pseudo_labels

    settings = run.settings
    labels = predict_pseudo_labels(run.unlabeled, bundle, run.work_dir / f"round-{round_number}",
                                   device=run.device, tta=settings.ranking == "tta" if tta is None else tta,
                                   seed=run.seed)
    return rank_pseudo_labels(labels, settings.ranking, top_k, seed=run.seed, labeled_volume_ml=run.labeled_volume_ml)


def self_training_round(run: GroupRun, bundle, one_shot: OneShot, selected, round_number: int, qc: QCNetworks, *,
                        folder: Path | None = None, from_scratch: bool | None = None, name: str | None = None):
    """Fine-tune ``bundle`` (or, ``from_scratch``, train anew as SL-1 was: from its ``init``, with its steps
    and rate) on the labeled example plus the ``selected`` pseudo-labels.

    Saved to ``folder`` (default ``models/round-N``) as the bundle ``name`` (default ``sslN``), checkpointed
    to the work folder's ``<name>.ckpt`` (default ``round-N.ckpt``); returns ``(bundle path, synthesis sources)``.
    """
    import numpy as np

    from singlestrip_bids.model.bundle import save_bundle
    from singlestrip_bids.training.self_training import fine_tune

    settings, key = run.settings, f"round-{round_number}"
    from_scratch = settings.from_scratch if from_scratch is None else from_scratch
    config = run.config if from_scratch else run.ssl_config
    LOG.info("round %d: %s on the labeled example + %d pseudo-labels%s", round_number,
             "retraining" if from_scratch else "fine-tuning", len(selected),
             ": " + ", ".join(label.bids_name for label in selected) if selected else " (none usable)")
    unet, losses, sources, gmm = fine_tune(bundle, one_shot.source, selected, config, from_scratch=from_scratch,
                                           init=settings.init, device=run.device,
                                           checkpoint=run.work_dir / f"{name or key}.ckpt", resume=settings.resume,
                                           seed=run.seed + round_number)
    run.losses[key] = losses
    extra = {
        "training": {**config.to_dict(), "kind": "ssl", "round": round_number, "ranking": settings.ranking,
                     "top_k": len(selected), "from_scratch": from_scratch, "labeled": bids_name(run.labeled_image),
                     "pseudo_labels": [label.bids_name for label in selected],
                     "final_loss": float(np.mean(losses[-50:])) if losses else None},
        "gmm": gmm,
        **({"sizing": run.sizing} if run.sizing else {}),
    }
    path = save_bundle(folder or run.models / key, name=name or f"ssl{round_number}", unet=unet,
                       voxel_size=run.config.voxel_size, head_margin_mm=run.config.head_margin_mm,
                       qc_ae=qc.autoencoder, dice_estimator=qc.estimator, extra=extra)
    return path, sources


def write_group_outputs(run: GroupRun, bundle, rows, ranked, sources, qc: QCNetworks) -> Path:
    """``models/final``, ``models/losses.json``, the group tables, reports and figures; returns the final bundle."""
    from singlestrip_bids.qc.score import qc_threshold
    from singlestrip_bids.report.group import write_group_report, write_synthesis_figure

    final = atomic_copy_folder(bundle, run.models / "final")
    atomic_write_json(run.losses, run.models / "losses.json")
    synthesis_png = write_synthesis_figure(sources, run.config, run.output_dir / "figures" / "group_synthesis.png",
                                           seed=run.seed)
    for suffix in sorted({_suffix(bids_name(path)) for path in [run.labeled_image, *run.unlabeled]}):
        suffix_rows = [row for row in rows if _suffix(row["bids_name"]) == suffix]
        table = atomic_write_tsv(suffix_rows, run.output_dir / f"group_{suffix}.tsv")
        suffix_ranked = [label for label in ranked if _suffix(label.bids_name) == suffix]
        write_group_report(run.output_dir, suffix, suffix_rows, suffix_ranked, run.losses, synthesis_png, table,
                           qc_threshold(qc.autoencoder),
                           None if qc.estimator is None else float(qc.estimator.config["qc_threshold"]))
    LOG.info("final model: %s", final)
    return final


def run_group_level(labeled_image, labeled_mask, images, output_dir, work_dir,
                    settings: GroupSettings = GroupSettings()) -> Path:
    """Train, self-train and report; returns the final bundle's path (``models/final``).

    ``labeled_image``/``labeled_mask``: the labeled example (checked by ``io.bids.check_labeled_mask``);
    ``images``: the selected images (the labeled one is left out of self-training).
    """
    run = start_group_run(labeled_image, labeled_mask, images, output_dir, work_dir, settings)
    one_shot = train_one_shot(run, qc := train_qc_network(run))
    qc = train_dice_estimator(run, one_shot, qc)
    bundle, rows, ranked, sources = one_shot.bundle, [], [], [one_shot.source]
    top_k = min(settings.top_k, MAX_TOP_K, len(run.unlabeled))
    models = {}  #: "round-N" -> (bundle, its synthesis sources, its masks of the unlabeled images, scored)
    for round_number in range(1, settings.rounds + 1) if run.unlabeled else ():
        ranked = score_and_rank(run, bundle, round_number, top_k)
        models[f"round-{round_number - 1}"] = (bundle, sources, ranked)
        round_rows = [_row(label, round_number) for label in ranked]
        rows += round_rows
        selected = [label for label in ranked if label.selected]
        bundle, sources = self_training_round(run, bundle, one_shot, selected, round_number, qc)
        atomic_write_tsv(round_rows, bundle / "ranking.tsv")
    if models:
        models[f"round-{settings.rounds}"] = (bundle, sources, score_and_rank(run, bundle, settings.rounds + 1, 0))
        bundle, sources = _choose_final(run, models)
    elif run.unlabeled:  # no self-training: still score the one-shot model's masks
        ranked = score_and_rank(run, bundle, 0, 0)
        rows = [_row(label, 0) for label in ranked]
    return write_group_outputs(run, bundle, rows, ranked, sources, qc)


def _choose_final(run: GroupRun, models: dict) -> tuple:
    """The final model: the round whose masks of the unlabeled images score best on average by the run's
    ranking score (a tie keeps the earlier round), written to ``models/selection.json``; returns its
    ``(bundle, sources)``."""
    from singlestrip_bids.training.self_training import best_model

    name, means = best_model({key: labels for key, (_, _, labels) in models.items()}, run.settings.ranking)
    atomic_write_json({"ranking": run.settings.ranking, "mean_scores": means, "final": name},
                      run.models / "selection.json")
    LOG.info("final model: %s (mean QC score of its masks of the %d unlabeled images: %s)", name,
             len(run.unlabeled), ", ".join(f"{key} {'n/a' if value is None else f'{value:.4f}'}"
                                           for key, value in means.items()))
    return models[name][:2]


def _row(label, round_number: int) -> dict:
    row = {"bids_name": label.bids_name, "round": round_number, "ae_dice": label.ae_dice}
    if label.tta_dice is not None:
        row["tta_dice"] = label.tta_dice
    if label.dice_estimate is not None:
        row["dice_estimate"] = label.dice_estimate
    return {**row, "brain_volume_ml": label.brain_volume_ml, "selected": int(label.selected)}


def _suffix(name: str) -> str:
    return name.rsplit("_", 1)[-1]
