"""How well do the QC scores (AE-2D, AE-3D, the Dice estimator, TTA) follow the true Dice of a mask?

    python benchmarks/qc_eval.py [--data DIR] [--out DIR] [--model BUNDLE] [--undertrained-steps 60]
                                 [--ae-steps 1500] [--ae-kinds 2d 3d] [--estimator-steps 300]
                                 [--tta-copies 10 (0: none)] [--cases N] [--threads N]

The autoencoders are trained on the labeled example's mask (fs_training_t1/sub-01, as the shipped
model). Every other real image of ``--data`` with a reference mask gets masks of graded quality:
the predictions of a trained model (``--model``, default the shipped one) and of an under-trained
SL-1 model (``--undertrained-steps`` steps), and corruptions of its reference mask (erosion,
dilation, missing slab, leaked skull, holes, shift). Each mask is scored with AE-2D and AE-3D
(``qc.score`` as the participant level does) and, for predictions, with TTA agreement. Prints a
table of Pearson r and MAE against the true Dice (native grid), writes ``qc_eval.json`` and, when
matplotlib is installed, ``qc_eval.png`` (scatter plots).
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

from singlestrip_bids.io.conform import conform, conform_mask
from singlestrip_bids.metrics import dice
from singlestrip_bids.model.bundle import Bundle, add_dice_estimator, default_bundle_path, load_bundle

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LABELED = ("fs_training_t1/sub-01/T1.mgz", "fs_training_t1/sub-01/brainmask_bin.nii.gz")
CASES = [
    ("fs_training_t1/sub-02/T1.mgz", "fs_training_t1/sub-02/brainmask_bin.nii.gz"),
    ("colin27_ch2/ch2.nii.gz", "colin27_ch2/ch2_brainmask_from-ch2bet.nii.gz"),
    ("ms_lesjak_longitudinal/patient01/study1_T1W.nii.gz",
     "ms_lesjak_longitudinal/patient01/study1_T1W_brainmask.nii.gz"),
    ("mrtrix_scripttest_sub01/sub-01_T1w.nii.gz", "mrtrix_scripttest_sub01/sub-01_brainmask.nii.gz"),
    ("fs_training_t1/sub-04/T1.mgz", "fs_training_t1/sub-04/brainmask_bin.nii.gz"),
    ("ms_lesjak_longitudinal/patient03/study2_FLAIR.nii.gz",
     "ms_lesjak_longitudinal/patient03/study2_FLAIR_brainmask.nii.gz"),
    ("fs_training_t1/sub-05/T1.mgz", "fs_training_t1/sub-05/brainmask_bin.nii.gz"),
    ("icbm152_2009c_2mm/2mm_T1.nii.gz", "icbm152_2009c_2mm/2mm_brainmask.nii.gz"),
    ("fs_training_t1/sub-06/T1.mgz", "fs_training_t1/sub-06/brainmask_bin.nii.gz"),
    ("ms_lesjak_longitudinal/patient03/study2_T1W.nii.gz",
     "ms_lesjak_longitudinal/patient03/study2_T1W_brainmask.nii.gz"),
]


def voxel_sizes(affine) -> np.ndarray:
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def corruptions(reference: np.ndarray, sizes, rng: np.random.Generator) -> dict:
    """Damaged copies of a reference mask (bool, native grid, ``sizes`` mm), keyed by a short name."""
    inside = ndimage.distance_transform_edt(reference, sampling=sizes)
    outside = ndimage.distance_transform_edt(~reference, sampling=sizes)
    cells = np.argwhere(reference)
    low, high = cells.min(axis=0), cells.max(axis=0)
    vertical = 2  # slabs cut across the third voxel axis (the slice axis of thick-slice images)
    out = {f"erode-{mm}mm": inside > mm for mm in (2, 5, 10)}
    out.update({f"dilate-{mm}mm": outside <= mm for mm in (2, 5, 10)})
    for fraction in (0.1, 0.25):
        slab = reference.copy()
        start = int(low[vertical] + (high[vertical] - low[vertical]) * (0.5 - fraction / 2))
        stop = int(start + (high[vertical] - low[vertical]) * fraction)
        slab[(slice(None),) * vertical + (slice(start, stop),)] = False
        out[f"slab-{int(fraction * 100)}pct"] = slab
    shell = (outside > 0) & (outside <= 12)
    half = np.zeros_like(reference)
    half[(slice(None),) * 2 + (slice((low[2] + high[2]) // 2, None),)] = True
    out["leak-skull"] = reference | (shell & half)
    holes = reference.copy()
    grid = np.indices(reference.shape)
    for centre in cells[rng.choice(len(cells), 12, replace=False)]:
        radius_vox = 8.0 / sizes
        holes &= sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radius_vox)) > 1
    out["holes"] = holes
    for mm in (4, 10):
        shift = np.round(mm / sizes[1]).astype(int)
        out[f"shift-{mm}mm"] = np.roll(reference, shift, axis=1)
    return out


def train_autoencoders(data: Path, bundle: Bundle, steps: int, seed: int, device, kinds=("2d", "3d")) -> dict:
    from singlestrip_bids.training.autoencoder import train_autoencoder

    mask = conform_mask(nib.load(data / LABELED[1]), bundle.voxel_size, bundle.size_multiple)
    out = {}
    for kind in kinds:
        start = time.perf_counter()
        out[kind], _ = train_autoencoder(mask, kind=kind, steps=steps, seed=seed, device=device,
                                         voxel_size=bundle.voxel_size)
        print(f"AE-{kind}: {steps} steps in {time.perf_counter() - start:.0f} s")
    return out


def train_dice_estimator(data: Path, bundle: Bundle, steps: int, seed: int, device):
    """The Dice estimator trained on the labeled example alone, as the group level would (its U-Net's
    thresholded predictions among the candidates)."""
    from singlestrip_bids.training.estimator import train_estimator
    from singlestrip_bids.training.sl1 import TrainingConfig, prepare_source

    config = TrainingConfig.from_dict(bundle.config["training"])
    source = prepare_source(nib.load(data / LABELED[0]), nib.load(data / LABELED[1]), config, seed)
    start = time.perf_counter()
    model, _ = train_estimator([source], config.synthesis, voxel_mm=bundle.voxel_size, unet=bundle.unet, steps=steps,
                               seed=seed, device=device)
    print(f"Dice estimator: {steps} steps in {time.perf_counter() - start:.0f} s")
    return model


def undertrained_bundle(data: Path, trained: Bundle, steps: int, folder: Path, device) -> Path:
    from dataclasses import replace

    from singlestrip_bids.model.unet import UNetConfig
    from singlestrip_bids.training.sl1 import TrainingConfig, train_sl1

    config = replace(TrainingConfig(), steps=steps, voxel_size=trained.voxel_size,
                     unet=UNetConfig(**trained.config["unet"]["config"]))
    path, _, _ = train_sl1(nib.load(data / LABELED[0]), nib.load(data / LABELED[1]), folder / "undertrained",
                           config, device=device, name="undertrained")
    return path


def predicted_mask(image_path: Path, bundle_path: Path, folder: Path, device) -> np.ndarray:
    from singlestrip_bids.inference.strip import strip_file

    mask_file = folder / "mask.nii.gz"
    strip_file(image_path, mask_file, folder / "brain.nii.gz", bundle_path=bundle_path, device=device)
    return np.asanyarray(nib.load(mask_file).dataobj) > 0


def summarise(rows: list, score: str, subset=None) -> dict:
    chosen = [row for row in rows if row.get(score) is not None and (subset is None or subset(row))]
    if len(chosen) < 3:
        return {"n": len(chosen)}
    truth = np.array([row["true_dice"] for row in chosen])
    values = np.array([row[score] for row in chosen])
    r = float(np.corrcoef(values, truth)[0, 1]) if values.std() > 0 and truth.std() > 0 else float("nan")
    return {"n": len(chosen), "pearson_r": round(r, 3), "mae": round(float(np.abs(values - truth).mean()), 3)}


def best_threshold(rows: list, score: str, good_dice: float = 0.9) -> dict:
    """Threshold on ``score`` that best separates masks of true Dice ≥ ``good_dice`` (Youden's J)."""
    values = np.array([row[score] for row in rows])
    good = np.array([row["true_dice"] >= good_dice for row in rows])
    if good.all() or not good.any():
        return {}
    candidates = np.unique(values)
    j = [((values >= t) & good).sum() / good.sum() - ((values >= t) & ~good).sum() / (~good).sum() for t in candidates]
    best = int(np.argmax(j))
    return {"threshold": round(float(candidates[best]), 4), "youden_j": round(float(j[best]), 3),
            "good_dice": good_dice}


def scatter(rows: list, scores: list, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(1, len(scores), figsize=(4.3 * len(scores) + 0.4, 4.2), sharey=True, squeeze=False)
    axes = axes[0]
    for axis, score in zip(axes, scores):
        for origin, colour in (("corruption", "#c44"), ("prediction", "#36c")):
            points = [(row["true_dice"], row[score]) for row in rows
                      if row["origin"] == origin and row.get(score) is not None]
            if points:
                axis.scatter(*zip(*points), s=14, c=colour, label=origin, alpha=0.8)
        axis.plot([0, 1], [0, 1], "k:", lw=1)
        axis.set(xlabel="true Dice", title=score.upper(), xlim=(0, 1.02), ylim=(0, 1.02))
    axes[0].set_ylabel("QC score")
    axes[0].legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--model", type=Path, default=None, help="trained bundle (default: the shipped model)")
    parser.add_argument("--undertrained-steps", type=int, default=60)
    parser.add_argument("--ae-steps", type=int, default=1500)
    parser.add_argument("--ae-kinds", nargs="*", default=["2d", "3d"], choices=["2d", "3d"])
    parser.add_argument("--estimator-steps", type=int, default=300,
                        help="Dice estimator steps (0: untrained, i.e. agreement with the U-Net)")
    parser.add_argument("--tta-copies", type=int, default=10, help="0: no TTA")
    parser.add_argument("--cases", type=int, default=len(CASES), help="use the first N cases only")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from singlestrip_bids.cli.progress import set_console_logging

    set_console_logging()  # each training phase's progress on stderr, as the group level shows it
    from singlestrip_bids.inference.predict import get_predictor
    from singlestrip_bids.model.device import resolve_device
    from singlestrip_bids.qc.autoencoder import ae_dice
    from singlestrip_bids.qc.estimator import estimate_dice
    from singlestrip_bids.qc.tta import tta_agreement

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device("auto")
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "qc_eval_work"
    work.mkdir(exist_ok=True)
    model_path = args.model or default_bundle_path()
    trained = load_bundle(model_path)
    autoencoders = train_autoencoders(args.data, trained, args.ae_steps, args.seed, device, args.ae_kinds)
    estimator = train_dice_estimator(args.data, trained, args.estimator_steps, args.seed, device)
    add_dice_estimator(shutil.copytree(model_path, args.out / "with_estimator", dirs_exist_ok=True), estimator)
    models = {"trained": model_path,
              "undertrained": undertrained_bundle(args.data, trained, args.undertrained_steps, work, device)}
    rng = np.random.default_rng(args.seed)
    rows = []
    for image_rel, mask_rel in CASES[: args.cases]:
        start = time.perf_counter()
        image_img, mask_img = nib.load(args.data / image_rel), nib.load(args.data / mask_rel)
        reference = np.asanyarray(mask_img.dataobj) > 0
        masks = {name: ("corruption", mask)
                 for name, mask in corruptions(reference, voxel_sizes(mask_img.affine), rng).items()}
        conformed = conform(image_img, trained.voxel_size, trained.size_multiple)
        tta = {}
        for name, path in models.items():
            masks[f"pred-{name}"] = ("prediction", predicted_mask(args.data / image_rel, path, work, device))
            if args.tta_copies:
                tta[f"pred-{name}"] = tta_agreement(get_predictor(path, device), conformed.data,
                                                    copies=args.tta_copies, seed=args.seed)["tta_dice"]
        for name, (origin, mask) in masks.items():
            working = conform_mask(nib.Nifti1Image(mask.astype(np.uint8), mask_img.affine), trained.voxel_size,
                                   trained.size_multiple)
            scores = {f"ae{kind}": round(ae_dice(ae, working), 4) for kind, ae in autoencoders.items()}
            scores["estimator"] = round(estimate_dice(
                estimator, conformed.data, working, head_margin_voxels=trained.head_margin_voxels,
                size_multiple=trained.size_multiple), 4)
            rows.append({"image": image_rel, "mask": name, "origin": origin,
                         "true_dice": round(dice(mask, reference), 4), **scores,
                         "tta": None if name not in tta else round(tta[name], 4)})
        print(f"{image_rel}: {len(masks)} masks in {time.perf_counter() - start:.0f} s")
    scores = [*(f"ae{kind}" for kind in autoencoders), "estimator", *(["tta"] if args.tta_copies else [])]
    summary = {
        score: {"all": summarise(rows, score),
                "predictions": summarise(rows, score, lambda row: row["origin"] == "prediction"),
                "threshold": best_threshold(rows, score) if score != "tta" else {}}
        for score in scores
    }
    print(f"\n{'score':6} {'subset':12} {'n':>4} {'r':>7} {'MAE':>7}")
    for score, parts in summary.items():
        for subset in ("all", "predictions"):
            entry = parts[subset]
            print(f"{score:6} {subset:12} {entry['n']:4d} {entry.get('pearson_r', float('nan')):7.3f} "
                  f"{entry.get('mae', float('nan')):7.3f}")
    for score in (score for score in scores if score != "tta"):
        print(f"{score}: threshold separating true Dice >= 0.9: {summary[score]['threshold']}")
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    result = {"settings": settings, "device": str(device), "summary": summary, "rows": rows}
    (args.out / "qc_eval.json").write_text(json.dumps(result, indent=2) + "\n")
    if scatter(rows, scores, args.out / "qc_eval.png"):
        print(f"scatter plot: {args.out / 'qc_eval.png'}")
    else:
        print("matplotlib is not installed: no scatter plot")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
