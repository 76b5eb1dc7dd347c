"""The group level: SL-1 from the labeled example, the QC autoencoder, then rounds of self-training.

Outputs under ``output_dir``:

- ``models/round-0/`` (SL-1), ``models/round-N/`` (self-training round N) and ``models/final/`` (a copy
  of the last round, which the participant level picks up): model bundles with the QC autoencoder;
  each self-training round also holds ``ranking.tsv`` (its pseudo-labels, best first);
- ``models/losses.json``: the training losses of the autoencoder, SL-1 and every round;
- ``group_<suffix>.tsv`` (first column ``bids_name``; one row per image and round),
  ``group_<suffix>.html`` and the figures it shows under ``figures/``.
"""

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from singlestrip_bids.training.sl1 import TrainingConfig

LOG = logging.getLogger(__name__)
MAX_TOP_K = 100  #: cap on --top-k: each kept image is one more synthesis source held in memory


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


def run_group_level(labeled_image, labeled_mask, images, output_dir, work_dir,
                    settings: GroupSettings = GroupSettings()) -> dict:
    """Train, self-train and report; returns ``{"final": bundle path, "rows": table rows, "losses": ...}``.

    ``labeled_image``/``labeled_mask``: the labeled example (checked by ``io.bids.check_labeled_mask``);
    ``images``: the selected images (the labeled one is left out of self-training).
    """
    from singlestrip_bids.io.conform import conform
    from singlestrip_bids.io.derivatives import atomic_write_json
    from singlestrip_bids.io.nifti import load_image
    from singlestrip_bids.model.device import resolve_device
    from singlestrip_bids.qc.autoencoder import train_autoencoder
    from singlestrip_bids.qc.score import qc_threshold
    from singlestrip_bids.report.group import write_group_report, write_synthesis_figure
    from singlestrip_bids.training.sl1 import train_sl1
    from singlestrip_bids.training.ssl import bids_name, fine_tune

    output_dir, work_dir = Path(output_dir).absolute(), Path(work_dir).absolute() / "singlestrip_group"
    models = output_dir / "models"
    config, seed = settings.training, settings.training.seed
    device = resolve_device(settings.device)
    image_img, mask_img = load_image(labeled_image), load_image(labeled_mask)
    unlabeled = [Path(path) for path in images if Path(path).resolve() != Path(labeled_image).resolve()]
    top_k = min(settings.top_k, MAX_TOP_K, len(unlabeled))

    LOG.info("training the %s QC autoencoder on the labeled mask (%d steps)", settings.qc_ae, settings.ae_steps)
    mask_working = conform(mask_img, config.voxel_size, config.unet.multiple).data >= 0.5
    losses = {"qc_ae": []}
    qc_ae, _ = train_autoencoder(mask_working, kind=settings.qc_ae, steps=settings.ae_steps, seed=seed,
                                 device=device, voxel_size=config.voxel_size, architecture=settings.ae_architecture,
                                 on_step=lambda step, loss: losses["qc_ae"].append(round(loss, 5)))

    LOG.info("SL-1: training the U-Net on synthesis from %s (%d steps)", bids_name(labeled_image), config.steps)
    bundle_path, losses["round-0"], labeled_source = train_sl1(
        image_img, mask_img, models / "round-0", config, device=device, checkpoint=work_dir / "round-0.ckpt",
        resume=settings.resume, name="sl1", labeled=bids_name(labeled_image), qc_ae=qc_ae)

    rows, ranked, sources = [], [], [labeled_source]
    for round_number in range(1, settings.rounds + 1) if unlabeled else ():
        ranked = _score_and_rank(unlabeled, bundle_path, work_dir / f"round-{round_number}", settings, top_k)
        rows += [_row(label, round_number) for label in ranked]
        selected = [label for label in ranked if label.selected]
        LOG.info("round %d: fine-tuning on the labeled example + %d pseudo-labels: %s", round_number,
                 len(selected), ", ".join(label.bids_name for label in selected))
        round_seed = seed + round_number
        unet, losses[f"round-{round_number}"], sources, gmm = fine_tune(
            bundle_path, labeled_source, selected, config, from_scratch=settings.from_scratch, device=device,
            checkpoint=work_dir / f"round-{round_number}.ckpt", resume=settings.resume, seed=round_seed)
        bundle_path = _save_round(models / f"round-{round_number}", unet, qc_ae, config, settings, round_number,
                                  selected, gmm, losses[f"round-{round_number}"], labeled_image)
        _write_tsv([_row(label, round_number) for label in ranked], bundle_path / "ranking.tsv")
    if settings.rounds == 0 and unlabeled:  # no self-training: still score the one-shot model's masks
        ranked = _score_and_rank(unlabeled, bundle_path, work_dir / "round-0", settings, 0)
        rows = [_row(label, 0) for label in ranked]

    final = _copy_bundle(bundle_path, models / "final")
    atomic_write_json(losses, models / "losses.json")
    synthesis_png = write_synthesis_figure(sources, config, output_dir / "figures" / "group_synthesis.png", seed=seed)
    for suffix in sorted({_suffix(bids_name(path)) for path in images}):
        suffix_rows = [row for row in rows if _suffix(row["bids_name"]) == suffix]
        table = _write_tsv(suffix_rows, output_dir / f"group_{suffix}.tsv")
        suffix_ranked = [label for label in ranked if _suffix(label.bids_name) == suffix]
        write_group_report(output_dir, suffix, suffix_rows, suffix_ranked, losses, synthesis_png, table,
                           qc_threshold(qc_ae))
    LOG.info("final model: %s", final)
    return {"final": final, "rows": rows, "losses": losses}


def _score_and_rank(images, bundle_path, folder, settings: GroupSettings, top_k: int):
    from singlestrip_bids.training.ssl import predict_pseudo_labels, rank_pseudo_labels

    labels = predict_pseudo_labels(images, bundle_path, folder, device=settings.device,
                                   tta=settings.ranking == "tta", seed=settings.training.seed)
    return rank_pseudo_labels(labels, settings.ranking, top_k, seed=settings.training.seed)


def _row(label, round_number: int) -> dict:
    row = {"bids_name": label.bids_name, "round": round_number, "ae_dice": label.ae_dice}
    if label.tta_dice is not None:
        row["tta_dice"] = label.tta_dice
    return {**row, "brain_volume_ml": label.brain_volume_ml, "selected": int(label.selected)}


def _suffix(name: str) -> str:
    return name.rsplit("_", 1)[-1]


def _save_round(path, unet, qc_ae, config, settings, round_number, selected, gmm, losses, labeled_image):
    import numpy as np

    from singlestrip_bids.model.bundle import save_bundle
    from singlestrip_bids.training.ssl import bids_name

    extra = {
        "training": {**config.to_dict(), "kind": "ssl", "round": round_number, "ranking": settings.ranking,
                     "top_k": len(selected), "from_scratch": settings.from_scratch,
                     "labeled": bids_name(labeled_image), "pseudo_labels": [label.bids_name for label in selected],
                     "final_loss": float(np.mean(losses[-50:])) if losses else None},
        "gmm": gmm,
    }
    return save_bundle(path, name=f"ssl{round_number}", unet=unet, voxel_size=config.voxel_size,
                       head_margin_mm=config.head_margin_mm, qc_ae=qc_ae, extra=extra)


def _copy_bundle(source: Path, target: Path) -> Path:
    """Copy a bundle folder atomically (built beside the target, then renamed into place)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        shutil.copytree(source, staging / "bundle")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / "bundle", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _write_tsv(rows, path) -> Path:
    """Rows (dicts with the same keys, ``bids_name`` first) as a tab-separated table, written atomically."""
    from singlestrip_bids.io.derivatives import atomic_write_bytes

    columns = list(rows[0]) if rows else ["bids_name"]
    lines = ["\t".join(columns)] + ["\t".join("n/a" if row.get(c) is None else str(row[c]) for c in columns)
                                    for row in rows]
    return atomic_write_bytes(("\n".join(lines) + "\n").encode(), path)

