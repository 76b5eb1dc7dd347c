"""The paper's experiment (METHOD.md §6–7) on the shared data, one labeled T1w image per fold.

    python benchmarks/paper.py [--quick] [--folds N] [--top-k K] [--steps N] [--ssl-steps N]
                               [--ssl-lr LR] [--sl1-model BUNDLE|default] [--models M ...]
                               [--data DIR] [--out DIR] [--device auto|cpu|cuda] [--seed S]

Each fold takes one FreeSurfer T1w head (fs_training_t1) with its mask as the labeled example. The
other T1w images are the unlabeled set and, the data being few, also the in-distribution test set
(transductive, unlike the paper's separate test set); the T2w, FLAIR and PD images are the
out-of-distribution test set (the paper used ASL). Models per fold: SL-1; SSL-AE (the k best
pseudo-labels by AE-QC); SSL-TTA (by TTA agreement); SSL-T (by true Dice: the upper bound); SSL-T
retrained from scratch. Prints mean Dice / HD95 per model and test set beside the paper's numbers,
and Pearson r / MAE of the AE-QC and TTA scores against the true Dice of SL-1's masks. ``--quick``
is sized for a 2-core CPU: one fold whose SL-1 model is the shipped one (trained by ``train_sl1`` on
fs_training_t1/sub-01, the first fold's labeled image, with its QC autoencoder), and 150
self-training steps for SSL-AE, SSL-TTA and SSL-T (SSL-T from scratch needs SL-1's whole budget:
full runs only). ``--sl1-model BUNDLE|default`` does the same with any SL-1 bundle trained on
that image. Writes ``paper.json`` and the fold models under ``--out``.
"""

import argparse
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from cases import DEFAULT_DATA, load_reference, shared_cases
from measure import machine_description, stop_on_sigterm
from table import format_table

HERE = Path(__file__).resolve().parent

# METHOD.md §7, as "Dice / HD95 mm" on the paper's in-distribution (FSM T1w) and OOD (ASL) test sets.
PAPER = {
    "SL-1": ("0.949-0.950 / 5.0-5.5", "0.897 / 12.8"),
    "SSL-AE": ("0.950 / 5.5", "0.924 / 7.0"),
    "SSL-TTA": ("0.863 / -", "0.624 / -"),
    "SSL-T": ("0.953 / 4.8", "0.936 / 6.0"),
    "SSL-T scratch": ("0.943 / -", "0.895 / -"),
}
PAPER_QC = {"AE": (0.708, 0.067), "TTA": (-0.100, 0.107)}
MODELS = list(PAPER)


def training_config(args):
    """SL-1 and SSL training settings: the package defaults, ``--steps`` and ``--ssl-steps`` aside."""
    from singlestrip_bids.training.sl1 import TrainingConfig

    config = TrainingConfig(steps=args.steps or TrainingConfig().steps, seed=args.seed)
    return config, replace(config, steps=args.ssl_steps or config.steps)


def linked_inputs(cases, folder: Path) -> dict:
    """Links with unique names to the images (self-training names masks after the file name)."""
    folder.mkdir(parents=True, exist_ok=True)
    links = {}
    for case in cases:
        extension = "".join(case.image.suffixes[-2:]) if case.image.name.endswith(".nii.gz") else case.image.suffix
        link = folder / (case.name.replace("/", "__").replace(".", "_") + extension)
        if not link.exists():
            link.symlink_to(case.image.resolve())
        links[case.name] = link
    return links


class Scorer:
    """Dice and HD95 of masks against the reference of each case (references loaded once)."""

    def __init__(self):
        self.references = {}

    def __call__(self, case, mask_file) -> tuple:
        import nibabel as nib

        from singlestrip_bids.metrics import dice, hd95

        if case.name not in self.references:
            reference, _, sizes = load_reference(case)
            self.references[case.name] = (reference, sizes)
        reference, sizes = self.references[case.name]
        mask = np.asanyarray(nib.load(mask_file).dataobj) > 0
        distance = hd95(mask, reference, sizes)
        return dice(mask, reference), (distance if math.isfinite(distance) else None)


def evaluate(bundle_path, cases, links, folder: Path, scorer, device) -> list:
    """Strip every test case with the bundle; one row (image, contrast, dice, hd95_mm) per case."""
    from singlestrip_bids.inference.strip import strip_file

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in cases:
        mask_file = folder / f"{links[case.name].name.split('.')[0]}_mask.nii.gz"
        strip_file(links[case.name], mask_file, folder / "brain.nii.gz", bundle_path=bundle_path, device=device)
        dice_value, hd95_value = scorer(case, mask_file)
        rows.append({"image": case.name, "contrast": case.contrast,
                     "test_set": "T1w" if case.contrast == "T1w" else "other contrasts",
                     "dice": round(dice_value, 4), "hd95_mm": None if hd95_value is None else round(hd95_value, 3)})
    return rows


def agreement(scores, truths) -> dict:
    """Pearson r and mean absolute error between QC scores and true Dice values."""
    scores, truths = np.asarray(scores, dtype=float), np.asarray(truths, dtype=float)
    r = float(np.corrcoef(scores, truths)[0, 1]) if len(scores) > 1 and scores.std() > 0 and truths.std() > 0 \
        else None
    return {"pearson_r": r, "mae": float(np.mean(np.abs(scores - truths))) if len(scores) else None,
            "n": int(len(scores))}


def progress(text: str) -> None:
    print(time.strftime("%H:%M:%S"), text, flush=True)


def select_top(labels, key, k: int) -> list:
    """The ``k`` pseudo-labels best by ``key`` (ties by name), non-empty masks only."""
    usable = sorted((label for label in labels if label.brain_volume_ml > 0), key=lambda label: label.bids_name)
    return sorted(usable, key=lambda label: -key(label))[:k]


def given_sl1(bundle_path: Path, image_img, mask_img, labeled) -> tuple:
    """An SL-1 bundle trained elsewhere on ``labeled``: (path, QC autoencoder, config, labeled source).

    The training config and class map come from the bundle's own settings, so self-training
    continues exactly the synthesis it was trained with.
    """
    from singlestrip_bids.model.bundle import load_bundle
    from singlestrip_bids.training.sl1 import TrainingConfig, prepare_source

    bundle = load_bundle(bundle_path)
    training = bundle.config.get("training", {})
    if training.get("labeled") != labeled.name or bundle.qc_ae is None:
        raise SystemExit(f"error: {bundle_path} was not trained on {labeled.name} or has no QC autoencoder")
    config = TrainingConfig.from_dict(training)
    return bundle.path, bundle.qc_ae, config, prepare_source(image_img, mask_img, config, config.seed)


def run_fold(labeled, unlabeled, test, args, out: Path, scorer) -> tuple:
    """One fold: SL-1, scored pseudo-labels, four self-trained models, all evaluated on ``test``.

    Returns ``(rows, qc_rows)``: one row per model and test image; one QC row per unlabeled image
    (true Dice of SL-1's mask, its AE-QC score and TTA agreement).
    """
    from singlestrip_bids.io.conform import conform
    from singlestrip_bids.io.nifti import load_image
    from singlestrip_bids.model.bundle import save_bundle
    from singlestrip_bids.model.device import resolve_device
    from singlestrip_bids.qc.autoencoder import train_autoencoder
    from singlestrip_bids.training.sl1 import train_sl1
    from singlestrip_bids.training.ssl import fine_tune, predict_pseudo_labels

    device = resolve_device(args.device)
    image_img, mask_img = load_image(labeled.image), load_image(labeled.reference)
    links = linked_inputs([*unlabeled, *test], out / "inputs")

    if args.sl1_model is not None:
        progress(f"  SL-1: the given model {args.sl1_model}, trained on {labeled.name}")
        sl1_bundle, qc_ae, config, labeled_source = given_sl1(args.sl1_model, image_img, mask_img, labeled)
        ssl_config = replace(config, steps=args.ssl_steps or config.steps)
    else:
        config, ssl_config = training_config(args)
        progress(f"  QC autoencoder and SL-1 from {labeled.name}")
        mask_working = conform(mask_img, config.voxel_size, config.unet.multiple).data >= 0.5
        qc_ae, _ = train_autoencoder(mask_working, kind="2d", steps=args.ae_steps, seed=args.seed, device=device,
                                     voxel_size=config.voxel_size)
        sl1_bundle, _, labeled_source = train_sl1(image_img, mask_img, out / "SL-1", config, device=device,
                                                  name="sl1", labeled=labeled.name, qc_ae=qc_ae)
    if args.ssl_lr:
        ssl_config = replace(ssl_config, learning_rate=args.ssl_lr)

    progress(f"  pseudo-labels of {len(unlabeled)} unlabeled images, with AE-QC and TTA scores")
    labels = predict_pseudo_labels([links[case.name] for case in unlabeled], sl1_bundle, out / "pseudo",
                                   device=device, tta=True, seed=args.seed)
    truth = {label.bids_name: scorer(case, label.mask)[0] for case, label in zip(unlabeled, labels)}
    qc_rows = [{"image": case.name, "true_dice": round(truth[label.bids_name], 4), "ae_dice": label.ae_dice,
                "tta_dice": label.tta_dice} for case, label in zip(unlabeled, labels)]

    bundles = {"SL-1": sl1_bundle}
    variants = {  # model: (ranking key, retrain from scratch)
        "SSL-AE": (lambda label: label.ae_dice, False),
        "SSL-TTA": (lambda label: label.tta_dice, False),
        "SSL-T": (lambda label: truth[label.bids_name], False),
        "SSL-T scratch": (lambda label: truth[label.bids_name], True),
    }
    for model, (key, from_scratch) in variants.items():
        if model not in args.models:
            continue
        selected = select_top(labels, key, args.top_k)
        progress(f"  {model}: {'retraining' if from_scratch else 'fine-tuning'} on the labeled image + "
                 f"{', '.join(label.bids_name for label in selected)}")
        unet, _, _, _ = fine_tune(sl1_bundle, labeled_source, selected, ssl_config, from_scratch=from_scratch,
                                  device=device, seed=args.seed + 1)
        bundles[model] = save_bundle(out / model.replace(" ", "-"), name=model.lower().replace(" ", "-"),
                                     unet=unet, voxel_size=config.voxel_size,
                                     head_margin_mm=config.head_margin_mm, qc_ae=qc_ae,
                                     extra={"training": {**ssl_config.to_dict(), "labeled": labeled.name,
                                                         "pseudo_labels": [l.bids_name for l in selected]}})
    rows = []
    for model, bundle in bundles.items():
        progress(f"  evaluating {model} on {len(test)} images")
        folder = out / "eval" / model.replace(" ", "-")
        rows += [{"model": model, **row} for row in evaluate(bundle, test, links, folder, scorer, device)]
    return rows, qc_rows


def _mean(values):
    values = [value for value in values if value is not None]
    return round(statistics.fmean(values), 4) if values else None


def _cell(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary_tables(rows, qc_rows) -> str:
    """Models x test sets beside the paper, then QC agreement beside the paper."""
    records = []
    for model in MODELS:
        record = {"model": model}
        for test_set, column in (("T1w", "T1w"), ("other contrasts", "other")):
            chosen = [row for row in rows if row["model"] == model and row["test_set"] == test_set]
            dice_mean, hd95_mean = _mean(row["dice"] for row in chosen), _mean(row["hd95_mm"] for row in chosen)
            record[column] = f"{_cell(dice_mean, '.3f')} / {_cell(hd95_mean, '.1f')}"
        record["paper FSM T1w"], record["paper ASL (OOD)"] = PAPER[model]
        records.append(record)
    models = format_table(records, ["model", "T1w", "other", "paper FSM T1w", "paper ASL (OOD)"],
                          {"T1w": "ours T1w Dice / HD95", "other": "ours T2w+FLAIR+PD (OOD)"})
    qc_records = []
    for score, key in (("AE", "ae_dice"), ("TTA", "tta_dice")):
        result = agreement([row[key] for row in qc_rows], [row["true_dice"] for row in qc_rows])
        qc_records.append({"score": score, "pearson_r": result["pearson_r"], "mae": result["mae"], "n": result["n"],
                           "paper_r": PAPER_QC[score][0], "paper_mae": PAPER_QC[score][1]})
    qc = format_table(qc_records, ["score", "pearson_r", "mae", "n", "paper_r", "paper_mae"],
                      {"pearson_r": "Pearson r", "mae": "MAE", "paper_r": "paper r", "paper_mae": "paper MAE"})
    return "\n\n".join(["Mean over folds and images (Dice / HD95 mm)", models,
                         "QC score vs true Dice of SL-1's masks (pooled over folds)", qc])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="CPU-sized: one fold, the shipped model as SL-1, 150 self-training steps, no SSL-T scratch")
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument("--top-k", type=int, default=3, help="pseudo-labels kept per self-training (paper: 10 of 58)")
    parser.add_argument("--steps", type=int, default=None, help="SL-1 training steps")
    parser.add_argument("--ssl-steps", type=int, default=None, help="self-training steps (default: --steps; quick 150)")
    parser.add_argument("--ssl-lr", type=float, default=None, help="self-training learning rate (default: SL-1's)")
    parser.add_argument("--sl1-model", type=Path, default=None,
                        help="use this SL-1 bundle (trained on the first fold's labeled image) instead of training "
                             "one; 'default' = the shipped model; implies --folds 1")
    parser.add_argument("--models", nargs="+", choices=MODELS[1:], default=None,
                        help="self-trained models to build (default: all four; quick: all but SSL-T scratch)")
    parser.add_argument("--ae-steps", type=int, default=1500, help="QC autoencoder steps (default 1500)")
    parser.add_argument("--only", nargs="+", default=None, help="keep unlabeled/test images named with one of these")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/paper-<UTC time>")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.sl1_model = args.sl1_model or Path("default")
        args.ssl_steps = args.ssl_steps or 150
        args.models = args.models or MODELS[1:4]
    args.models = args.models or MODELS[1:]
    if args.sl1_model is not None:
        from singlestrip_bids.model.bundle import default_bundle_path

        args.sl1_model = default_bundle_path() if str(args.sl1_model) == "default" else args.sl1_model.resolve()
        args.folds = 1
    if args.out is None:
        args.out = HERE / "results" / time.strftime("paper-%Y%m%dT%H%M%SZ", time.gmtime())
    args.out = args.out.resolve()
    return args


def split(cases, args):
    """(labeled candidates, unlabeled T1w images, other-contrast test images); the rat is left out."""
    human = [case for case in cases if case.dataset != "rat_t2rare_u2net"]
    kept = [case for case in human if not args.only or any(text in case.name for text in args.only)]
    labeled = [case for case in human if case.dataset == "fs_training_t1"][: args.folds]
    return labeled, [case for case in kept if case.contrast == "T1w"], [case for case in kept if case.contrast != "T1w"]


def main(argv=None) -> int:
    import torch

    from singlestrip_bids.io.derivatives import atomic_write_json

    args = parse_args(argv)
    stop_on_sigterm()
    torch.manual_seed(args.seed)
    labeled_cases, t1w, other = split(shared_cases(args.data), args)
    if not labeled_cases:
        print(f"error: no fs_training_t1 images under {args.data}", file=sys.stderr)
        return 2
    scorer = Scorer()
    rows, qc_rows = [], []
    started = time.perf_counter()
    for number, labeled in enumerate(labeled_cases, 1):
        unlabeled = [case for case in t1w if case.name != labeled.name]
        progress(f"fold {number}/{len(labeled_cases)}: labeled {labeled.name}, {len(unlabeled)} unlabeled, "
                 f"{len(other)} other-contrast test images")
        fold_rows, fold_qc = run_fold(labeled, unlabeled, unlabeled + other, args, args.out / f"fold-{number}", scorer)
        rows += [{"fold": number, "labeled": labeled.name, **row} for row in fold_rows]
        qc_rows += [{"fold": number, "labeled": labeled.name, **row} for row in fold_qc]
        atomic_write_json({"command": " ".join([sys.executable, *sys.argv]), "machine": machine_description(),
                           "settings": {key: str(value) for key, value in vars(args).items()},
                           "seconds": round(time.perf_counter() - started, 1), "rows": rows, "qc_rows": qc_rows},
                          args.out / "paper.json")
    print()
    print(summary_tables(rows, qc_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
