"""The paper's experiment (the method's steps 2-4 and its results table) on the shared data.

    python benchmarks/paper.py [--dataset human|mouse] [--quick] [--folds N] [--top-k K] [--steps N]
                               [--ssl-steps N] [--ssl-lr LR] [--ssl-final-lr LR] [--pseudo-label-band N] [--retrain]
                               [--init scratch|default|BUNDLE] [--sl1-model BUNDLE|default] [--models M ...]
                               [--estimator-steps N]
                               [--fold F ...] [--resume]
                               [--peers RESULTS_JSON ...] [--data DIR] [--out DIR] [--device auto|cpu|cuda]
                               [--seed S]

Each fold (``folds.py``) has one labeled image, an unlabeled set and a test set. A fold runs the
group level's own stages (``training.group``): QC autoencoder, SL-1, pseudo-labels scored by AE-QC
and TTA, then one self-training round per model: SSL-AE (the k best pseudo-labels by AE-QC), SSL-TTA
(by TTA agreement), SSL-T (by true Dice: the upper bound) and SSL-T scratch (trained anew as SL-1
was: from ``--init``, with SL-1's steps and rate; ``--retrain`` does so for every model); on request
SSL-estimator (by the Dice estimator, trained for ``--estimator-steps`` after SL-1). With SSL-AE,
the row "SL-1 or SSL-AE, QC-chosen" is the group level's final model: whichever of the two scores
better by mean AE-QC over the fold's unlabeled images. Prints mean ± SD Dice and HD95 per model and
test set beside the paper's numbers, and Pearson r / MAE of the AE-QC and TTA scores against the
true Dice of SL-1's masks.

``--dataset human``: one FreeSurfer T1w head labeled per fold (``--init scratch``, as the paper).
``--dataset mouse``: ``mouse_epi_sidneyp`` in five folds split by animal, tested on held-out mice.
``--quick`` (human) is sized for a 2-core CPU: one fold whose SL-1 model is the shipped one (trained
on fs_training_t1/sub-01, the first fold's labeled image, with its QC autoencoder), and 150
self-training steps for SSL-AE, SSL-TTA and SSL-T; ``--sl1-model BUNDLE|default`` does the same with
any SL-1 bundle trained on that image. Writes ``paper.json``, ``fold-N/rows.json`` and the fold models
under ``--out``; ``--fold`` and ``--resume`` let the folds run in separate processes into one ``--out``.
The tables are in ``paper_tables.py``.
"""

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from cases import DEFAULT_DATA, load_reference
from folds import DATASETS, make_folds, test_set
from measure import machine_description, stop_on_sigterm
from paper_tables import ESTIMATOR_MODEL, MODELS, PAPER, PEERS, QC_CHOSEN, per_fold_table, summary_tables

HERE = Path(__file__).resolve().parent


def group_settings(args):
    """The group level's settings for a fold: the package defaults, the benchmark's options aside."""
    from singlestrip_bids.training.group import SSL_LEARNING_RATE, SSL_STEPS, GroupSettings, one_shot_config

    training = one_shot_config(args.init, seed=args.seed, steps=args.steps,
                               real_image_probability=args.real_image_probability)
    return GroupSettings(training=training, ae_steps=args.ae_steps, top_k=args.top_k, device=args.device,
                         init=str(args.init), resume=args.resume, ssl_steps=args.ssl_steps or SSL_STEPS,
                         ssl_learning_rate=args.ssl_lr or SSL_LEARNING_RATE, ssl_final_learning_rate=args.ssl_final_lr,
                         pseudo_label_band=args.pseudo_label_band,
                         estimator_steps=args.estimator_steps if ESTIMATOR_MODEL in args.models else 0)


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
        rows.append({"image": case.name, "contrast": case.contrast, "dice": round(dice_value, 4),
                     "hd95_mm": None if hd95_value is None else round(hd95_value, 3)})
    return rows


def progress(text: str) -> None:
    print(time.strftime("%H:%M:%S"), text, flush=True)


def given_sl1(run, bundle_path: Path, labeled):
    """An SL-1 bundle trained elsewhere on ``labeled``: the run takes its training config; returns
    ``(OneShot, QCNetworks)``, the labeled source refitted with the bundle's own settings."""
    from singlestrip_bids.io.nifti import load_image
    from singlestrip_bids.model.bundle import load_bundle
    from singlestrip_bids.training.group import OneShot
    from singlestrip_bids.training.qc_networks import QCNetworks
    from singlestrip_bids.training.self_training import bids_name
    from singlestrip_bids.training.sl1 import TrainingConfig, prepare_source

    bundle = load_bundle(bundle_path)
    training = bundle.config.get("training", {})
    # the shipped model names its labeled case; a group-level bundle, the labeled image's BIDS name
    if training.get("labeled") not in (labeled.name, bids_name(labeled.image)) or bundle.qc_ae is None:
        raise SystemExit(f"error: {bundle_path} was not trained on {labeled.name} or has no QC autoencoder")
    run.config = replace(TrainingConfig.from_dict(training), seed=run.seed)
    source = prepare_source(load_image(labeled.image), load_image(labeled.reference), run.config, run.config.seed)
    return OneShot(bundle.path, source), QCNetworks(bundle.qc_ae, bundle.dice_estimator)


def run_fold(fold, dataset: str, args, out: Path, scorer) -> tuple:
    """One fold: SL-1, scored pseudo-labels, the self-trained models, all evaluated on the test set.

    Returns ``(rows, qc_rows)``: one row per model and test image; one QC row per unlabeled image
    with a reference (true Dice of SL-1's mask, its AE-QC score, TTA agreement and estimated Dice).
    """
    from singlestrip_bids.io.atomic import atomic_copy_folder
    from singlestrip_bids.training.group import (
        score_and_rank,
        self_training_round,
        start_group_run,
        train_one_shot,
    )
    from singlestrip_bids.training.qc_networks import train_dice_estimator, train_qc_network
    from singlestrip_bids.training.self_training import best_model, rank_pseudo_labels

    links = linked_inputs([*fold.unlabeled, *fold.test], out / "inputs")
    run = start_group_run(fold.labeled.image, fold.labeled.reference, [links[case.name] for case in fold.unlabeled],
                          out, out / "work", group_settings(args))
    if args.sl1_model is not None:
        progress(f"  SL-1: the given model {args.sl1_model}, trained on {fold.labeled.name}")
        one_shot, qc = given_sl1(run, args.sl1_model, fold.labeled)
    else:
        progress(f"  QC autoencoder and SL-1 ({run.config.steps} steps from {args.init}) on {fold.labeled.name}, "
                 f"{run.config.voxel_size} mm grid")
        qc = train_qc_network(run)
        one_shot = train_one_shot(run, qc, folder=out / "SL-1")
    if run.settings.estimator_steps:
        if one_shot.bundle != out / "SL-1":  # the estimator joins a copy: a given bundle stays as it was
            one_shot = replace(one_shot, bundle=atomic_copy_folder(one_shot.bundle, out / "SL-1"))
        progress(f"  Dice estimator ({run.settings.estimator_steps} steps) on {fold.labeled.name}")
        qc = train_dice_estimator(run, one_shot, qc)

    tta = "SSL-TTA" in args.models
    scores = ["AE-QC", *(["TTA"] if tta else []), *(["estimated Dice"] if qc.estimator is not None else [])]
    progress(f"  pseudo-labels of {len(fold.unlabeled)} unlabeled images, with {', '.join(scores)}")
    labels = score_and_rank(run, one_shot.bundle, 1, 0, tta=tta)
    cases = {links[case.name].name.split(".")[0]: case for case in fold.unlabeled}
    truth = {label.bids_name: scorer(cases[label.bids_name], label.mask)[0] for label in labels
             if cases[label.bids_name].reference is not None}
    qc_rows = [{"image": cases[label.bids_name].name, "true_dice": round(truth[label.bids_name], 4),
                "ae_dice": label.ae_dice, "tta_dice": label.tta_dice, "dice_estimate": label.dice_estimate}
               for label in labels if label.bids_name in truth]

    bundles = {"SL-1": one_shot.bundle}
    variants = {  # model: (ranking, retrain from scratch)
        "SSL-AE": ("ae", False),
        "SSL-TTA": ("tta", False),
        "SSL-T": (lambda label: truth.get(label.bids_name, -1.0), False),
        "SSL-T scratch": (lambda label: truth.get(label.bids_name, -1.0), True),
        ESTIMATOR_MODEL: ("estimator", False),
    }
    for model, (ranking, from_scratch) in variants.items():
        if model not in args.models:
            continue
        from_scratch = from_scratch or args.retrain
        ranked = rank_pseudo_labels(labels, ranking, args.top_k, seed=args.seed,
                                    labeled_volume_ml=run.labeled_volume_ml)
        selected = [label for label in ranked if label.selected]
        progress(f"  {model}: {'retraining' if from_scratch else 'fine-tuning'} on the labeled image + "
                 f"{', '.join(label.bids_name for label in selected)}")
        bundles[model], _ = self_training_round(run, one_shot.bundle, one_shot, selected, 1, qc,
                                                folder=out / model.replace(" ", "-"), from_scratch=from_scratch,
                                                name=model.lower().replace(" ", "-"))
    rows = []
    for model, bundle in bundles.items():
        progress(f"  evaluating {model} on {len(fold.test)} images")
        folder = out / "eval" / model.replace(" ", "-")
        rows += [{"model": model, **row, "test_set": test_set(dataset, case)}
                 for case, row in zip(fold.test, evaluate(bundle, fold.test, links, folder, scorer, args.device))]
    if "SSL-AE" in bundles:
        progress("  the group level's final model: SL-1 or SSL-AE by the mean AE-QC of their unlabeled masks")
        scored = {"SL-1": labels, "SSL-AE": score_and_rank(run, bundles["SSL-AE"], 2, 0)}
        chosen, means = best_model(scored, "ae")
        progress(f"  {QC_CHOSEN}: {chosen} (" + ", ".join(f"{k} {v:.4f}" for k, v in means.items()) + ")")
        rows += [{**row, "model": QC_CHOSEN, "chosen": chosen} for row in rows if row["model"] == chosen]
    return rows, qc_rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=DATASETS, default="human", help="whose folds (default human)")
    parser.add_argument("--quick", action="store_true",
                        help="human, CPU-sized: one fold, the shipped model as SL-1, 150 self-training steps, "
                             "no SSL-T scratch")
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument("--top-k", type=int, default=3, help="pseudo-labels kept per self-training (paper: 10 of 58)")
    parser.add_argument("--steps", type=int, default=None,
                        help="SL-1 training steps (default: the group level's for --init)")
    parser.add_argument("--ssl-steps", type=int, default=None,
                        help="self-training steps (default: the group level's; quick 150)")
    parser.add_argument("--ssl-lr", type=float, default=None,
                        help="self-training learning rate (default: the group level's)")
    parser.add_argument("--ssl-final-lr", type=float, default=None,
                        help="the self-training rate falls along a half cosine to this (default: constant)")
    parser.add_argument("--pseudo-label-band", type=int, default=0,
                        help="working-grid voxels either side of a pseudo-label's edge left out of the "
                             "self-training loss (default 0: every voxel counts)")
    parser.add_argument("--retrain", action="store_true",
                        help="every self-trained model is trained anew as SL-1 was (from --init, SL-1's steps and "
                             "rate) instead of fine-tuned from SL-1")
    parser.add_argument("--init", default=None,
                        help="where SL-1 starts: scratch, default or a bundle (default: human scratch, as the "
                             "paper; mouse: the group level's default)")
    parser.add_argument("--sl1-model", type=Path, default=None,
                        help="use this SL-1 bundle instead of training one: trained on the labeled image of the "
                             "one fold given with --fold, or of the first fold with --folds 1 (implied without "
                             "--fold); 'default' = the shipped model")
    parser.add_argument("--models", nargs="+", choices=MODELS[1:], default=None,
                        help="self-trained models to build (default: the paper's four; quick: all but SSL-T "
                             f"scratch); {ESTIMATOR_MODEL} also trains the Dice estimator")
    parser.add_argument("--estimator-steps", type=int, default=300,
                        help=f"Dice estimator training steps for {ESTIMATOR_MODEL} (default 300)")
    parser.add_argument("--real-image-probability", type=float, default=None,
                        help="share of training draws showing a source's real image (default: the package's)")
    parser.add_argument("--ae-steps", type=int, default=1500, help="QC autoencoder steps (default 1500)")
    parser.add_argument("--only", nargs="+", default=None,
                        help="human: keep unlabeled/test images named with one of these")
    parser.add_argument("--fold", type=int, nargs="+", default=None,
                        help="run only these folds (1-based; default: all --folds)")
    parser.add_argument("--resume", action="store_true",
                        help="take the folds already under --out (fold-N/rows.json) instead of running them again, "
                             "and continue a fold's trainings from their checkpoints")
    parser.add_argument("--peers", type=Path, nargs="+", default=[],
                        help="results.json files of benchmarks/run.py: their singlestrip, deepbet and hd-bet rows "
                             "for each fold's test images join the table as peers")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/paper-<UTC time>")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.sl1_model = args.sl1_model or Path("default")
        args.ssl_steps = args.ssl_steps or 150
        args.models = args.models or MODELS[1:4]
    args.models = args.models or list(PAPER)[1:]
    if args.init is None:
        from singlestrip_bids.training.group import GroupSettings

        args.init = "scratch" if args.dataset == "human" else GroupSettings().init
    if args.sl1_model is not None:
        from singlestrip_bids.model.bundle import default_bundle_path

        args.sl1_model = default_bundle_path() if str(args.sl1_model) == "default" else args.sl1_model.resolve()
        if args.fold is None:
            args.folds = 1
        elif len(args.fold) != 1:
            parser.error("--sl1-model was trained on one fold's labeled image: give one --fold")
    outside = [fold for fold in args.fold or [] if not 1 <= fold <= args.folds]
    if outside:
        parser.error(f"--fold {' '.join(map(str, outside))}: there are {args.folds} {args.dataset} folds")
    if args.out is None:
        args.out = HERE / "results" / time.strftime(f"paper-{args.dataset}-%Y%m%dT%H%M%SZ", time.gmtime())
    args.out = args.out.resolve()
    return args


def peer_rows(results_files, fold, dataset: str) -> list:
    """Rows of ``benchmarks/run.py`` results for the fold's test images, named as in ``paper_tables.PEERS``."""
    names = dict(zip(("singlestrip", "deepbet", "hd-bet"), PEERS))
    tests = {case.name: case for case in fold.test}
    rows = []
    for path in results_files:
        for row in json.loads(Path(path).read_text())["rows"]:
            if row["image"] in tests and row["method"] in names and row["status"] == "ok":
                rows.append({"model": names[row["method"]], "image": row["image"], "contrast": row["contrast"],
                             "dice": row["dice"], "hd95_mm": row["hd95_mm"],
                             "test_set": test_set(dataset, tests[row["image"]])})
    return rows


def main(argv=None) -> int:
    import torch

    from singlestrip_bids.cli.progress import set_console_logging
    from singlestrip_bids.io.atomic import atomic_write_json

    args = parse_args(argv)
    stop_on_sigterm()
    set_console_logging()  # each training phase's progress on stderr, as the group level shows it
    torch.manual_seed(args.seed)
    folds = make_folds(args.dataset, args.data, args.folds, args.only)
    if not folds:
        print(f"error: no {args.dataset} images under {args.data}", file=sys.stderr)
        return 2
    scorer = Scorer()
    rows, qc_rows = [], []
    started = time.perf_counter()
    for number, fold in enumerate(folds, 1):
        saved = args.out / f"fold-{number}" / "rows.json"
        if args.resume and saved.is_file():
            progress(f"fold {number}/{len(folds)}: taken from {saved}")
            fold_rows, fold_qc = (json.loads(saved.read_text())[key] for key in ("rows", "qc_rows"))
        elif args.fold and number not in args.fold:
            continue
        else:
            progress(f"fold {number}/{len(folds)}: labeled {fold.labeled.name}, {len(fold.unlabeled)} unlabeled, "
                     f"{len(fold.test)} test images")
            fold_rows, fold_qc = run_fold(fold, args.dataset, args, args.out / f"fold-{number}", scorer)
            atomic_write_json({"rows": fold_rows, "qc_rows": fold_qc}, saved)
        fold_rows += peer_rows(args.peers, fold, args.dataset)
        rows += [{"fold": number, "labeled": fold.labeled.name, **row} for row in fold_rows]
        qc_rows += [{"fold": number, "labeled": fold.labeled.name, **row} for row in fold_qc]
        atomic_write_json({"command": " ".join([sys.executable, *sys.argv]), "machine": machine_description(),
                           "settings": {key: str(value) for key, value in vars(args).items()},
                           "seconds": round(time.perf_counter() - started, 1), "rows": rows, "qc_rows": qc_rows},
                          args.out / "paper.json")
    print()
    print(summary_tables(rows, qc_rows, args.dataset))
    print()
    print(per_fold_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
