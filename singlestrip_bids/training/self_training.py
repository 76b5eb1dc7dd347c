"""Self-training (SSL-AE, the method's step 4): predict, score and rank pseudo-labels, fine-tune on the top k.

One round: the current model strips every unlabeled image (the masks the participant level would
write), each mask gets its AE-QC score (and its TTA agreement when ranking by TTA), the k best are
kept, and the U-Net is fine-tuned (or retrained) on synthesis from the labeled example plus those k
pseudo-labels, every source drawn with the same probability.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LOG = logging.getLogger(__name__)
RANKINGS = ("ae", "tta", "estimator", "none")
_SCORE_OF = {"ae": "ae_dice", "tta": "tta_dice", "estimator": "dice_estimate"}
#: a pseudo-label whose brain volume is more than this factor above or below the labeled brain's is
#: never selected: it is a wrong mask, not another brain (fetal stacks: SL-1's masks of 2-4x the
#: labeled brain passed AE-QC at 0.89 and self-training on them lost Dice; docs/benchmarks.md)
VOLUME_RATIO = 2.0


@dataclass
class PseudoLabel:
    """One unlabeled image, its predicted mask (native grid) and its scores."""

    image: Path
    mask: Path
    bids_name: str  #: file name without extension, e.g. ``sub-02_T1w``
    brain_volume_ml: float
    ae_dice: float | None
    tta_dice: float | None = None
    dice_estimate: float | None = None
    selected: bool = False


def bids_name(path) -> str:
    """``sub-01/anat/sub-01_T1w.nii.gz`` → ``sub-01_T1w``."""
    return Path(path).name.split(".")[0]


def predict_pseudo_labels(images, bundle_path, folder, *, device="auto", tta=False, seed=0) -> list[PseudoLabel]:
    """Strip ``images`` with the bundle (masks written under ``folder``) and score every mask.

    ``tta``: also compute the TTA agreement (10 predictions per image); the bundle's Dice estimator,
    when it has one, gives ``dice_estimate``. Returns one :class:`PseudoLabel` per image, in the
    order of ``images``.
    """
    from singlestrip_bids.inference.predict import get_predictor
    from singlestrip_bids.inference.strip import strip_image
    from singlestrip_bids.io.atomic import atomic_write_nifti
    from singlestrip_bids.qc.score import score_mask
    from singlestrip_bids.qc.tta import tta_agreement
    from singlestrip_bids.training.loop import progress_record

    predictor = get_predictor(bundle_path, device)
    bundle = predictor.bundle
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels, start = [], time.perf_counter()
    for index, image in enumerate(images, 1):
        name = bids_name(image)
        mask_file = folder / f"{name}_desc-brain_mask.nii.gz"
        stripped = strip_image(image, bundle_path=bundle_path, device=device)
        mask_img, conformed = stripped.mask_image(), stripped.conformed.data
        atomic_write_nifti(mask_img, mask_file)
        scores = score_mask(mask_img, bundle, conformed)
        volume = stripped.stats["postprocess"]["brain_volume_ml"]
        label = PseudoLabel(Path(image), mask_file, name, round(volume, 2), scores.get("ae_dice"),
                            dice_estimate=scores.get("dice_estimate"))
        if tta:
            label.tta_dice = round(tta_agreement(predictor, conformed, seed=seed)["tta_dice"], 4)
        shown = [f"{key} {value:.3f}" for key, value in (("AE-QC", label.ae_dice), ("TTA", label.tta_dice),
                                                          ("estimated Dice", label.dice_estimate)) if value is not None]
        # as a training phase's records: the console draws one bar, the log keeps each line
        progress = progress_record("pseudo-labels", index, len(images),
                                   index / max(time.perf_counter() - start, 1e-9), unit="images/s")
        LOG.info("%s: %s, %.0f mL", name, ", ".join(shown), label.brain_volume_ml, extra={"progress": progress})
        labels.append(label)
    return labels


def mean_score(labels, ranking) -> float | None:
    """The mean QC score of one model's masks of the unlabeled images: the score ``ranking`` ranks by
    (AE-QC for ``"none"`` or a callable); None when no mask has it."""
    key = _SCORE_OF.get(ranking, "ae_dice") if isinstance(ranking, str) else "ae_dice"
    values = [getattr(label, key) for label in labels if getattr(label, key) is not None]
    return float(np.mean(values)) if values else None


def best_model(scored: dict, ranking) -> tuple[str, dict]:
    """The model whose masks of the unlabeled images score best on average (:func:`mean_score`).

    ``scored``: model name → its :class:`PseudoLabel` s, earliest model first; a tie goes to the
    earlier one. Returns ``(name, {name: mean score or None})``.
    """
    means = {name: mean_score(labels, ranking) for name, labels in scored.items()}
    return max(means, key=lambda name: -1.0 if means[name] is None else means[name]), means


def plausible_volume(label: PseudoLabel, labeled_volume_ml: float | None) -> bool:
    """A non-empty mask within :data:`VOLUME_RATIO` of the labeled brain's volume (mL; None: any size)."""
    volume = label.brain_volume_ml
    if volume <= 0:
        return False
    return labeled_volume_ml is None or 1 / VOLUME_RATIO <= volume / labeled_volume_ml <= VOLUME_RATIO


def rank_pseudo_labels(labels, ranking, top_k: int, seed: int = 0,
                       labeled_volume_ml: float | None = None) -> list[PseudoLabel]:
    """Order ``labels`` best first by ``ranking`` and mark the first ``top_k`` as selected.

    ``ranking``: ``"ae"``/``"tta"``/``"estimator"`` (by decreasing AE-QC, TTA agreement or estimated
    Dice), ``"none"`` (a random order drawn from
    ``seed``) or a callable ``label -> score`` (e.g. the true Dice, for the upper bound); ties by
    name. Empty masks teach nothing, and masks whose volume is far from ``labeled_volume_ml`` (the
    labeled brain's, mL: :func:`plausible_volume`) teach the wrong thing: they are ranked last and
    never selected. ``top_k`` larger than the number of usable masks keeps them all. Returns the
    ranked list.
    """
    if not callable(ranking) and ranking not in RANKINGS:
        raise ValueError(f"unknown ranking {ranking!r} (use {', '.join(RANKINGS)})")
    by_name = sorted(labels, key=lambda label: label.bids_name)
    if ranking == "none":
        ranked = [by_name[i] for i in np.random.default_rng(seed).permutation(len(by_name))]
    else:
        score = ranking if callable(ranking) else (lambda label: getattr(label, _SCORE_OF[ranking]))
        ranked = sorted(by_name, key=lambda label: -score(label))
    usable = [label for label in ranked if plausible_volume(label, labeled_volume_ml)]
    ranked = usable + [label for label in ranked if label not in usable]
    for position, label in enumerate(ranked):
        label.selected = position < top_k and label in usable
        if label not in usable and label.brain_volume_ml > 0:
            LOG.info("%s: %.0f mL, more than %gx from the labeled brain's %.0f mL: not used", label.bids_name,
                     label.brain_volume_ml, VOLUME_RATIO, labeled_volume_ml)
    return ranked


def fine_tune(bundle_path, labeled_source, selected, config, *, from_scratch=False, init="scratch", device="auto",
              checkpoint=None, resume=False, seed=0):
    """Train the U-Net on synthesis from the labeled source plus the selected pseudo-labels.

    ``labeled_source``: the source returned by ``train_sl1`` (``training.sl1.prepare_source``);
    ``selected``: :class:`PseudoLabel` s whose GMM class maps are fitted here; ``config``: the
    ``training.sl1.TrainingConfig`` (steps, learning rate, synthesis). The U-Net starts from the
    bundle's weights, or, ``from_scratch``, where SL-1 started (``init``: random weights, a shipped
    model or a bundle; ``training.sl1.initial_unet``). Returns ``(unet, losses, sources, gmm summaries)``; ``sources``
    are the ``prepare_source`` results trained on, the labeled one first.
    """
    import nibabel as nib

    from singlestrip_bids.io.nifti import load_image
    from singlestrip_bids.model.bundle import load_bundle
    from singlestrip_bids.seeding import seed_everything
    from singlestrip_bids.training.sl1 import initial_unet, prepare_source, train_unet

    sources, summaries = [labeled_source], []
    for index, label in enumerate(selected):
        source = prepare_source(load_image(label.image), nib.load(label.mask), config, seed + index)
        sources.append(source)
        summaries.append({"bids_name": label.bids_name, **source[2]})
    seed_everything(seed)
    unet = initial_unet(config, init)[0] if from_scratch else load_bundle(bundle_path).unet
    losses = train_unet(unet, sources, config, device=device, checkpoint=checkpoint, resume=resume, seed=seed,
                        n_labeled=1)
    return unet, losses, sources, summaries
