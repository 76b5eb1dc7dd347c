"""Command-line options: the BIDS Apps contract plus the SingleStrip training and QC options.

Only the standard library is imported here, so ``--help`` and ``--version`` answer at once.
"""

import argparse
import json
import math
from pathlib import Path

from singlestrip_bids import __version__


def _number(kind, *, above=None, at_least=None, at_most=None):
    """An argparse type converting to ``kind`` (int or float), finite, within the given bounds."""

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"must be > {above}: {text!r}")
        if at_least is not None and value < at_least:
            raise argparse.ArgumentTypeError(f"must be >= {at_least}: {text!r}")
        if at_most is not None and value > at_most:
            raise argparse.ArgumentTypeError(f"must be <= {at_most}: {text!r}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its error messages
    return convert


def _auto_or(convert):
    """An argparse type that takes ``auto`` or what ``convert`` takes."""

    def parse(text: str):
        return "auto" if text == "auto" else convert(text)

    parse.__name__ = convert.__name__
    return parse


def _init(text: str):
    """``--init``: ``scratch``, a shipped model's name (``model.bundle.SHIPPED_MODELS``) or a bundle folder."""
    from singlestrip_bids.model.bundle import SHIPPED_MODELS

    if text == "scratch" or text in SHIPPED_MODELS:
        return text
    if not (Path(text) / "bundle.json").is_file():
        names = ", ".join(["scratch", *SHIPPED_MODELS])
        raise argparse.ArgumentTypeError(f"not {names} or a model bundle folder: {text!r}")
    return Path(text)


def _bids_filter_file(text: str) -> dict:
    """``--bids-filter-file``: the file read and checked (``io.bids.load_bids_filters``)."""
    from singlestrip_bids.errors import UserError
    from singlestrip_bids.io.bids import load_bids_filters

    try:
        return load_bids_filters(Path(text).expanduser())
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _json_object(text: str) -> dict:
    """Parse ``--plugin-args``: a JSON object such as ``{"n_procs": 4}``."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object such as '{\"n_procs\": 4}'")
    return value


def _build_parser() -> argparse.ArgumentParser:
    """The ``singlestrip_bids`` argument parser (BIDS Apps positional arguments first)."""
    parser = argparse.ArgumentParser(
        prog="singlestrip_bids",
        description="Skull-strip every image of a BIDS dataset with a network learned from a single "
        "labeled example (participant level), or learn that network from one labeled image and "
        "self-train it on the rest of the dataset (group level).",
    )
    parser.add_argument("bids_dir", type=Path, help="the input BIDS dataset (never modified)")
    parser.add_argument("output_dir", type=Path, help="where the BIDS-Derivatives are written")
    parser.add_argument("analysis_level", choices=["participant", "group"],
                        help="participant: strip images; group: train a model on this dataset")
    parser.add_argument("--version", action="version", version=f"singlestrip_bids {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more on the console (-v: this app's debug messages and Nipype's records, which "
                        "otherwise go to output_dir/logs/ only; -vv: Nipype's debug records too)")

    select = parser.add_argument_group("selecting images")
    select.add_argument("--participant-label", "--participant_label", dest="participant_label",
                        nargs="+", action="extend", metavar="LABEL",
                        help="subjects to process, with or without 'sub-' (default: all)")
    select.add_argument("--session-label", "--session_label", dest="session_label",
                        nargs="+", action="extend", metavar="LABEL",
                        help="sessions to process, with or without 'ses-' (default: all)")
    select.add_argument("--bids-filter-file", dest="bids_filters", type=_bids_filter_file, metavar="FILE",
                        help="a PyBIDS JSON filter keyed by lower-case suffix, as in fMRIPrep")
    select.add_argument("--suffix", nargs="+", action="extend", metavar="SUFFIX",
                        help="BIDS suffixes to strip, e.g. T1w T2w FLAIR PDw bold dwi asl m0scan "
                        "(default: T1w)")
    select.add_argument("--skip-bids-validation", "--skip_bids_validation", action="store_true",
                        help="do not run the BIDS validator on the input")

    run = parser.add_argument_group("execution")
    run.add_argument("-w", "--work-dir", type=Path, default=Path("work_dir"),
                     help="Nipype work directory (reusable: a rerun skips finished steps); "
                     "must be outside bids_dir (default: ./%(default)s)")
    run.add_argument("--nprocs", "--n_cpus", dest="nprocs", type=_number(int, above=0),
                     help="processes run in parallel (default: all CPUs)")
    run.add_argument("--omp-nthreads", type=_number(int, above=0),
                     help="threads of one network prediction (default: --nprocs)")
    run.add_argument("--mem-gb", type=_number(float, above=0), help="memory available to the run, in GB")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                     help="torch device; auto uses CUDA when present (default: %(default)s)")
    run.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                     help="forward-pass precision of the prediction; auto: bf16 on CUDA and on CPUs that compute "
                     "bf16 natively (AVX512-BF16, AMX), fp32 elsewhere (default: %(default)s)")
    run.add_argument("--plugin", default="MultiProc",
                     help="Nipype execution plugin: Linear, MultiProc, SLURM, SGE, PBS, ... (default: %(default)s)")
    run.add_argument("--plugin-args", type=_json_object, default={}, metavar="JSON",
                     help="Nipype plugin arguments as a JSON object, e.g. '{\"sbatch_args\": \"-p short\"}'")
    run.add_argument("--random-seed", type=_number(int, at_least=0), default=0,
                     help="seed of the Python, NumPy and torch random generators (default: %(default)s)")

    model = parser.add_argument_group("model and masks")
    model.add_argument("--model", type=Path, metavar="BUNDLE",
                       help="a model bundle folder, or 'synthetic' for the shipped model trained on purely "
                       "synthetic heads (default: output_dir/models/final from a previous group run if "
                       "present, else the model shipped with the package)")
    model.add_argument("--border", type=_number(float), default=0.0, metavar="MM",
                       help="grow (> 0) or shrink (< 0) the mask by this distance in mm (default: %(default)s)")
    model.add_argument("--qc-masks", type=Path, metavar="DERIV_DIR",
                       help="participant level: score the *_desc-brain_mask files of this derivatives "
                       "dataset with the QC autoencoder instead of predicting masks")

    group = parser.add_argument_group("group level: training and self-training")
    group.add_argument("--labeled-subject", metavar="LABEL",
                       help="the subject whose manual mask is in bids_dir/derivatives/ "
                       "(*_desc-brain_mask.nii.gz)")
    group.add_argument("--labeled-mask", type=Path, metavar="FILE",
                       help="the brain mask of the labeled subject's image, if not in derivatives/")
    group.add_argument("--train-steps", type=_number(int, above=0),
                       help="training steps of the U-Net (default: the training default)")
    group.add_argument("--ssl-steps", type=_number(int, above=0),
                       help="fine-tuning steps of each self-training round (default: the group default)")
    group.add_argument("--ssl-learning-rate", type=_number(float, above=0), metavar="LR",
                       help="fine-tuning learning rate of each self-training round (default: the group default)")
    group.add_argument("--batch-size", type=_number(int, above=0), help="synthetic pairs per training step")
    group.add_argument("--working-voxel-size", type=_auto_or(_number(float, above=0)), default="auto", metavar="MM",
                       help="voxel size of the network's working grid in mm; auto: the labeled brain's "
                       "extent / 60, the patches, margin and QC box following it (default: %(default)s)")
    group.add_argument("--real-image-probability", type=_number(float, at_least=0, at_most=1), metavar="P",
                       help="share of training pairs that show a source's real image (the labeled one, the "
                       "pseudo-labeled ones), warped and degraded, instead of an image painted from its "
                       "class map (default: 0.5, as measured on the mouse folds; 0: synthesis only)")
    group.add_argument("--init", type=_init, default="default", metavar="{scratch,default,synthetic,BUNDLE}",
                       help="where one-shot training starts: random weights, the shipped model, the shipped "
                       "synthetic model, or a bundle folder with the same U-Net (default: %(default)s)")
    group.add_argument("--resume", action="store_true",
                       help="continue an interrupted training from its last checkpoint in the work dir")
    group.add_argument("--qc-ae", choices=["2d", "3d"], default="2d",
                       help="kind of the quality-control autoencoder (default: %(default)s)")
    group.add_argument("--qc-ae-steps", type=_number(int, above=0),
                       help="training steps of the quality-control autoencoder (default: the training default)")
    group.add_argument("--top-k", type=_number(int, above=0), default=10,
                       help="pseudo-labeled images kept per self-training round (default: %(default)s)")
    group.add_argument("--ssl-rounds", type=_number(int, at_least=0), default=1, metavar="N",
                       help="self-training rounds; 0 keeps the one-shot model (default: %(default)s)")
    group.add_argument("--ssl-ranking", choices=["ae", "tta", "estimator", "none"], default="ae",
                       help="score that ranks the pseudo-labels before the top k are kept: AE-QC, TTA agreement, "
                       "or the Dice estimator's estimate (default: %(default)s)")
    group.add_argument("--qc-estimator-steps", type=_number(int, at_least=0), metavar="N",
                       help="training steps of the Dice estimator; 0: none (default: the group default)")
    group.add_argument("--from-scratch", action="store_true",
                       help="self-training trains the U-Net anew as SL-1 was (from --init, with SL-1's steps and "
                            "rate) instead of fine-tuning SL-1")
    return parser
