"""Entry point of ``singlestrip_bids``: parse, check the inputs, dispatch to a level driver.

User mistakes end as one line ``singlestrip_bids: error: <message>`` on stderr and exit code 1;
argparse's own usage errors keep its exit code 2. Heavy packages are imported only after parsing.
"""

import logging
import sys

from singlestrip_bids.cli.parser import _build_parser
from singlestrip_bids.errors import UserError
from singlestrip_bids.io.lock import hold_work_dir
from singlestrip_bids.seeding import seed_everything

LOGGER = logging.getLogger("singlestrip_bids")


def main(argv=None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = _build_parser().parse_args(argv)
    _set_logging(args.verbose)
    try:
        return _run(args)
    except UserError as exc:
        message = " ".join(str(exc).split())
        print(f"singlestrip_bids: error: {message}", file=sys.stderr)
        return 1


def _set_logging(verbose: int) -> None:
    """INFO for this app by default, DEBUG from ``-v`` on (Nipype's own loggers keep their handlers)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s", "%H:%M:%S"))
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(logging.DEBUG if verbose else logging.INFO)


def _run(args) -> int:
    _normalize_args(args)
    _check_paths(args)
    if not args.skip_bids_validation:
        from singlestrip_bids.io.validator import validate_bids

        warnings = validate_bids(args.bids_dir)
        LOGGER.info("BIDS validator: no errors, %d warning(s)", len(warnings))
        for warning in warnings:
            LOGGER.debug("BIDS validator warning: %s", warning)
    if args.analysis_level == "participant" and args.qc_masks is None:
        from singlestrip_bids.cli.participant import run_participant, select_images

        images = select_images(args)  # bad images are refused before the slow torch import
        seed_everything(args.random_seed)
        with hold_work_dir(args.work_dir):
            return run_participant(args, images)
    seed_everything(args.random_seed)
    if args.qc_masks is not None:
        from singlestrip_bids.cli.qc_masks import run_qc_masks

        return run_qc_masks(args)
    from singlestrip_bids.cli.group import run_group

    with hold_work_dir(args.work_dir):
        return run_group(args)


def _normalize_args(args) -> None:
    """Absolute paths, labels without their ``sub-``/``ses-`` prefix, default suffix T1w."""
    from singlestrip_bids.io.bids import normalize_labels

    for name in ("bids_dir", "output_dir", "work_dir", "bids_filter_file", "model", "labeled_mask", "qc_masks"):
        value = getattr(args, name)
        if value is not None:
            setattr(args, name, value.expanduser().absolute())
    if args.participant_label:
        args.participant_label = normalize_labels(args.participant_label, "sub")
    if args.session_label:
        args.session_label = normalize_labels(args.session_label, "ses")
    if args.labeled_subject:
        args.labeled_subject = normalize_labels([args.labeled_subject], "sub")[0]
    args.suffix = args.suffix or ["T1w"]
    if args.qc_masks is not None and args.analysis_level != "participant":
        raise UserError("--qc-masks is a participant-level option")


def _check_paths(args) -> None:
    """The input must be a folder; output and work dir must be writable and outside of it."""
    from singlestrip_bids.io.derivatives import check_output_dir

    if not args.bids_dir.is_dir():
        raise UserError(f"bids_dir {args.bids_dir} is not a directory")
    check_output_dir(args.bids_dir, args.output_dir, args.work_dir)
