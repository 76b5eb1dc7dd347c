"""How well do the QC scores (AE-2D, AE-3D, the Dice estimator, TTA) follow the true Dice of a mask?

    python benchmarks/qc_eval.py [--dataset human|mouse|fetal] [--fold F] [--data DIR] [--out DIR]
                                 [--model BUNDLE] [--peers RESULTS_JSON ...] [--undertrained-steps 60] [--ae-steps 1500]
                                 [--ae-kinds 2d 3d] [--estimator-steps 300 | --model-estimator]
                                 [--tta-copies 10 (0: none)]
                                 [--cases N] [--threads N]
    python benchmarks/qc_eval.py --pool RUN/qc_eval.json ... [--out DIR]

The autoencoders and the estimator are trained on one labeled example, as the group level would:
``--dataset human`` labels fs_training_t1/sub-01 (the shipped model's example) and grades ten other
real heads; ``--dataset mouse`` labels the labeled image of mouse fold ``--fold`` (``folds.py``) and
grades every masked image of the other animals, with ``--model`` a bundle trained on that image
(``paper.py``'s ``fold-F/SL-1``); ``--dataset fetal`` labels the first fetal stack (run 1, as the
tutorial does) and grades the other five, with ``--model`` a group-level bundle trained on run 1.
The autoencoders' box follows the labeled brain
(``training.sizing``). Every graded image gets masks of graded quality: the predictions of the
trained model (``--model``, default the shipped one) and of an under-trained SL-1 model
(``--undertrained-steps`` steps from random weights, with the trained model's sizes), the masks
other tools made of it in ``benchmarks/run.py`` runs (``--peers``: deepbet, HD-BET), and
corruptions of its reference mask (erosion, dilation, missing slab, leaked skull, holes, shift).
Each mask is scored with AE-2D and AE-3D (``qc.score`` as the participant level does), the Dice
estimator (trained here, or ``--model-estimator``: the one ``--model`` carries, e.g. from ``paper.py
--models SSL-estimator``) and, for predictions, TTA agreement. Prints Pearson r, Spearman, MAE and the AUC for
detecting a true Dice below 0.9, over all masks, the predictions and per contrast; writes
``qc_eval.json`` and, when matplotlib is installed, ``qc_eval.png`` (scatter plots).

``--pool`` trains and grades nothing: it reads the rows of earlier runs (each dataset graded by the
QC of its own labeled example, as a user's group level would train it) and prints the same table over
all of them together, per dataset and per contrast; writes ``qc_pool.json`` and ``qc_pool.png``.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from agreement import GOOD_DICE, agreement
from cases import DEFAULT_DATA, fetal_cases, load_reference, shared_cases
from folds import make_folds
from scipy import ndimage

from singlestrip_bids.io.conform import conform, conform_mask
from singlestrip_bids.metrics import dice
from singlestrip_bids.model.bundle import Bundle, add_dice_estimator, default_bundle_path, load_bundle

#: the human images graded (``cases.shared_cases`` names); the labeled one is human fold 1's (fs_training_t1/sub-01)
HUMAN_CASES = [
    "fs_training_t1/sub-02", "colin27_ch2/ch2", "ms_lesjak_longitudinal/patient01/study1_T1W",
    "mrtrix_scripttest_sub01/sub-01_T1w", "fs_training_t1/sub-04", "ms_lesjak_longitudinal/patient03/study2_FLAIR",
    "fs_training_t1/sub-05", "icbm152_2009c_2mm/2mm_T1", "fs_training_t1/sub-06",
    "ms_lesjak_longitudinal/patient03/study2_T1W",
]


def graded_cases(dataset: str, data: Path, fold: int = 1) -> tuple:
    """``(labeled Case, graded Cases)``: the labeled example of the dataset's fold ``fold`` and the
    images with a reference that it grades (human: :data:`HUMAN_CASES`; mouse: every masked image of
    the fold's other animals, unlabeled and test alike; fetal: run 1 labels the other stacks)."""
    if dataset == "fetal":
        stacks = fetal_cases(data)
        if len(stacks) < 2:
            raise SystemExit(f"error: no fetal stacks with masks under {data}")
        return stacks[0], stacks[1:]
    folds = make_folds(dataset, data, max(fold, 1))
    if len(folds) < fold:
        raise SystemExit(f"error: no {dataset} fold {fold} under {data}")
    labeled = folds[fold - 1].labeled
    if dataset == "human":
        by_name = {case.name: case for case in shared_cases(data)}
        return labeled, [by_name[name] for name in HUMAN_CASES if name in by_name]
    chosen = folds[fold - 1]
    return labeled, sorted([case for case in chosen.unlabeled if case.reference is not None] + chosen.test,
                           key=lambda case: case.name)


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


def train_autoencoders(labeled, bundle: Bundle, steps: int, seed: int, device, kinds=("2d", "3d")) -> dict:
    """AE-2D and AE-3D trained on the ``labeled`` Case's mask, their box sized from it as the group level does."""
    from singlestrip_bids.training.autoencoder import train_autoencoder
    from singlestrip_bids.training.sizing import derive_sizing

    mask_img = nib.load(labeled.reference)
    sizing = derive_sizing(mask_img, voxel_size=bundle.voxel_size, multiple=bundle.size_multiple)
    mask = conform_mask(mask_img, bundle.voxel_size, bundle.size_multiple)
    out = {}
    for kind in kinds:
        start = time.perf_counter()
        out[kind], _ = train_autoencoder(mask, kind=kind, steps=steps, seed=seed, device=device,
                                         voxel_size=bundle.voxel_size, architecture=sizing.ae_architecture(kind),
                                         augmentation={"shift_mm": sizing.ae_shift_mm})
        print(f"AE-{kind}: {steps} steps in {time.perf_counter() - start:.0f} s")
    return out


def training_config(bundle: Bundle):
    """The bundle's own training configuration (its working grid, patches and synthesis)."""
    from singlestrip_bids.training.sl1 import TrainingConfig

    return TrainingConfig.from_dict(bundle.config["training"])


def train_dice_estimator(labeled, bundle: Bundle, steps: int, seed: int, device):
    """The Dice estimator trained on the ``labeled`` Case alone, as the group level would (its U-Net's
    thresholded predictions among the candidates)."""
    from singlestrip_bids.training.estimator import train_estimator
    from singlestrip_bids.training.sl1 import prepare_source

    config = training_config(bundle)
    source = prepare_source(nib.load(labeled.image), nib.load(labeled.reference), config, seed)
    start = time.perf_counter()
    model, _ = train_estimator([source], config.synthesis, voxel_mm=bundle.voxel_size, unet=bundle.unet, steps=steps,
                               seed=seed, device=device)
    print(f"Dice estimator: {steps} steps in {time.perf_counter() - start:.0f} s")
    return model


def undertrained_bundle(labeled, trained: Bundle, steps: int, folder: Path, device) -> Path:
    """SL-1 after ``steps`` steps from random weights on the ``labeled`` Case, with the trained model's sizes.

    Its seed is one past the trained model's: the Dice estimator's own early U-Nets
    (``training.estimator.early_unets``) start from the run's seed, and this model must not be one of them."""
    from dataclasses import replace

    from singlestrip_bids.training.sl1 import train_sl1

    base = training_config(trained)
    config = replace(base, steps=steps, learning_rate=1e-3, final_learning_rate=None, seed=base.seed + 1)
    path, _, _ = train_sl1(nib.load(labeled.image), nib.load(labeled.reference), folder / "undertrained",
                           config, device=device, name="undertrained")
    return path


def predicted_mask(image_path: Path, bundle_path: Path, folder: Path, device) -> np.ndarray:
    from singlestrip_bids.inference.strip import strip_file

    mask_file = folder / "mask.nii.gz"
    strip_file(image_path, mask_file, folder / "brain.nii.gz", bundle_path=bundle_path, device=device)
    return np.asanyarray(nib.load(mask_file).dataobj) > 0


def summarise(rows: list, score: str, subset=None) -> dict:
    """:func:`agreement.agreement` of ``score`` with the true Dice over the rows that have it (and pass ``subset``)."""
    chosen = [row for row in rows if row.get(score) is not None and (subset is None or subset(row))]
    if len(chosen) < 3:
        return {"n": len(chosen)}
    result = agreement([row[score] for row in chosen], [row["true_dice"] for row in chosen])
    return {key: value if value is None or key == "n" else round(value, 3) for key, value in result.items()}


def best_threshold(rows: list, score: str, good_dice: float = GOOD_DICE) -> dict:
    """Threshold on ``score`` that best separates masks of true Dice ≥ ``good_dice`` (Youden's J), over
    the rows that have the score."""
    rows = [row for row in rows if row.get(score) is not None]
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


def peer_masks(results_files) -> dict:
    """``{image name: {method: mask file}}`` from ``benchmarks/run.py`` results (its masks of the same images)."""
    masks = {}
    for path in results_files:
        for row in json.loads(Path(path).read_text())["rows"]:
            if row["status"] == "ok" and row.get("mask_path") and Path(row["mask_path"]).is_file():
                masks.setdefault(row["image"], {})[row["method"]] = Path(row["mask_path"])
    return masks


def grade_case(case, trained: Bundle, models: dict, autoencoders: dict, estimator, args, work: Path, rng,
               device, peers: dict | None = None) -> list:
    """One row per graded mask of ``case``: its origin, true Dice and every QC score; ``peers``: other
    tools' masks of it (``{method: mask file}``), graded as predictions."""
    from singlestrip_bids.inference.predict import get_predictor
    from singlestrip_bids.qc.autoencoder import ae_dice
    from singlestrip_bids.qc.estimator import estimate_dice
    from singlestrip_bids.qc.tta import tta_agreement

    reference, mask_img, sizes = load_reference(case)
    masks = {name: ("corruption", mask) for name, mask in corruptions(reference, sizes, rng).items()}
    conformed = conform(nib.load(case.image), trained.voxel_size, trained.size_multiple)
    tta = {}
    for name, path in models.items():
        masks[f"pred-{name}"] = ("prediction", predicted_mask(case.image, path, work, device))
        if args.tta_copies:
            tta[f"pred-{name}"] = tta_agreement(get_predictor(path, device), conformed.data,
                                                copies=args.tta_copies, seed=args.seed)["tta_dice"]
    for method, path in (peers or {}).items():
        masks[f"peer-{method}"] = ("prediction", np.asanyarray(nib.load(path).dataobj) > 0)
    rows = []
    for name, (origin, mask) in masks.items():
        working = conform_mask(nib.Nifti1Image(mask.astype(np.uint8), mask_img.affine), trained.voxel_size,
                               trained.size_multiple)
        scores = {f"ae{kind}": round(ae_dice(ae, working), 4) for kind, ae in autoencoders.items()}
        scores["estimator"] = round(estimate_dice(
            estimator, conformed.data, working, head_margin_voxels=trained.head_margin_voxels,
            size_multiple=trained.size_multiple), 4)
        rows.append({"image": case.name, "contrast": case.contrast, "mask": name, "origin": origin,
                     "true_dice": round(dice(mask, reference), 4), **scores,
                     "tta": None if name not in tta else round(tta[name], 4)})
    return rows


def summary_of(rows: list, scores: list) -> dict:
    """Per score: agreement over all masks, the predictions, each dataset (pooled rows only) and each
    contrast, and the best threshold."""
    contrasts = sorted({row["contrast"] for row in rows})
    datasets = sorted({row["dataset"] for row in rows if "dataset" in row})
    return {score: {"all": summarise(rows, score),
                    "predictions": summarise(rows, score, lambda row: row["origin"] == "prediction"),
                    **{dataset: summarise(rows, score, lambda row, d=dataset: row.get("dataset") == d)
                       for dataset in (datasets if len(datasets) > 1 else [])},
                    **{contrast: summarise(rows, score, lambda row, c=contrast: row["contrast"] == c)
                       for contrast in contrasts},
                    "threshold": best_threshold(rows, score) if score != "tta" else {}}
            for score in scores}


def summary_table(summary: dict) -> str:
    from table import format_table

    records = [{"score": score, "subset": subset, **entry} for score, parts in summary.items()
               for subset, entry in parts.items() if subset != "threshold"]
    return format_table(records, ["score", "subset", "n", "pearson_r", "spearman", "mae", "auc"],
                        {"pearson_r": "Pearson r", "mae": "MAE", "auc": f"AUC (Dice < {GOOD_DICE})"})


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("human", "mouse", "fetal"), default="human",
                        help="whose labeled example and images (default human)")
    parser.add_argument("--fold", type=int, default=1, help="the fold whose labeled example trains the QC (default 1)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--model", type=Path, default=None,
                        help="bundle trained on the labeled example (default: the shipped model; mouse: required)")
    parser.add_argument("--undertrained-steps", type=int, default=60)
    parser.add_argument("--ae-steps", type=int, default=1500)
    parser.add_argument("--ae-kinds", nargs="*", default=["2d", "3d"], choices=["2d", "3d"])
    parser.add_argument("--estimator-steps", type=int, default=300,
                        help="Dice estimator steps (0: untrained, i.e. agreement with the U-Net)")
    parser.add_argument("--model-estimator", action="store_true",
                        help="score with the Dice estimator --model carries instead of training one")
    parser.add_argument("--tta-copies", type=int, default=10, help="0: no TTA")
    parser.add_argument("--peers", type=Path, nargs="+", default=[],
                        help="results.json files of benchmarks/run.py: their masks of the graded images join the "
                             "predictions")
    parser.add_argument("--cases", type=int, default=None, help="use the first N graded images only")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool", type=Path, nargs="+", default=[],
                        help="qc_eval.json files of earlier runs: their rows summarised together, nothing trained")
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.pool if not path.is_file()]
    if missing:
        parser.error(f"--pool: no such file: {', '.join(missing)}")
    if args.model is None and args.dataset != "human":
        parser.error(f"--dataset {args.dataset} needs --model: a bundle trained on its labeled image")
    if args.model_estimator and load_bundle(args.model or default_bundle_path()).dice_estimator is None:
        parser.error(f"--model-estimator: {args.model or 'the shipped model'} carries no Dice estimator")
    return args


def json_settings(args) -> dict:
    """The command line's options as JSON values (paths, and lists of them such as ``--peers``, as text)."""
    def plain(value):
        if isinstance(value, list):
            return [plain(item) for item in value]
        return str(value) if isinstance(value, Path) else value

    return {key: plain(value) for key, value in vars(args).items()}


def pooled_rows(paths) -> tuple:
    """``(rows, scores)`` of several ``qc_eval.json`` files: every row tagged with its run's dataset;
    the scores any run measured, in :func:`main`'s order."""
    rows, seen = [], set()
    for path in paths:
        run = json.loads(Path(path).read_text())
        rows += [{**row, "dataset": run["settings"]["dataset"]} for row in run["rows"]]
        seen |= set(run["summary"])
    order = ["ae2d", "ae3d", "estimator", "tta"]
    return rows, [score for score in order if score in seen]


def report(rows: list, scores: list, document: dict, out: Path, stem: str) -> None:
    """Print the summary table and thresholds; write ``<stem>.json`` and ``<stem>.png`` to ``out``."""
    summary = summary_of(rows, scores)
    print()
    print(summary_table(summary))
    for score in (score for score in scores if score != "tta"):
        print(f"{score}: threshold separating true Dice >= {GOOD_DICE}: {summary[score]['threshold']}")
    from singlestrip_bids.io.atomic import atomic_write_json

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json({**document, "summary": summary, "rows": rows}, out / f"{stem}.json")
    if scatter(rows, scores, out / f"{stem}.png"):
        print(f"scatter plot: {out / f'{stem}.png'}")
    else:
        print("matplotlib is not installed: no scatter plot")


def main(argv=None) -> int:
    from measure import machine_description

    args = parse_args(argv)
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if args.pool:
        rows, scores = pooled_rows(args.pool)
        print(f"{len(rows)} graded masks from {len(args.pool)} runs")
        report(rows, scores, {"date": date, "pooled": [str(path) for path in args.pool]}, args.out, "qc_pool")
        return 0
    from singlestrip_bids.cli.progress import set_console_logging

    set_console_logging()  # each training phase's progress on stderr, as the group level shows it
    from singlestrip_bids.model.device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device("auto")
    torch.manual_seed(args.seed)
    labeled, cases = graded_cases(args.dataset, args.data, args.fold)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "qc_eval_work"
    work.mkdir(exist_ok=True)
    model_path = args.model or default_bundle_path()
    trained = load_bundle(model_path)
    print(f"labeled example: {labeled.name}; {len(cases[: args.cases])} graded images; model {model_path}")
    autoencoders = train_autoencoders(labeled, trained, args.ae_steps, args.seed, device, args.ae_kinds)
    if args.model_estimator:
        estimator = trained.dice_estimator
        print(f"Dice estimator: the one {model_path} carries")
    else:
        estimator = train_dice_estimator(labeled, trained, args.estimator_steps, args.seed, device)
        add_dice_estimator(shutil.copytree(model_path, args.out / "with_estimator", dirs_exist_ok=True), estimator)
    models = {"trained": model_path,
              "undertrained": undertrained_bundle(labeled, trained, args.undertrained_steps, work, device)}
    rng, peers = np.random.default_rng(args.seed), peer_masks(args.peers)
    rows = []
    for case in cases[: args.cases]:
        start = time.perf_counter()
        rows += (case_rows := grade_case(case, trained, models, autoencoders, estimator, args, work, rng, device,
                                         peers.get(case.name)))
        print(f"{case.name}: {len(case_rows)} masks in {time.perf_counter() - start:.0f} s")
    scores = [*(f"ae{kind}" for kind in autoencoders), "estimator", *(["tta"] if args.tta_copies else [])]
    report(rows, scores, {"date": date, "machine": machine_description(), "labeled": labeled.name,
                          "settings": json_settings(args), "device": str(device)}, args.out, "qc_eval")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
