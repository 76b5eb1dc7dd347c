"""Entry point of ``singlestrip_bids``: parse, check the inputs, dispatch to a level driver.

User mistakes end as one line ``singlestrip_bids: error: <message>`` on stderr and exit code 1, as
do a full disk, a refused write or memory running out (``-v`` adds the traceback); argparse's own
usage errors keep its exit code 2; Ctrl-C stops the run with one line and exit code 130. Heavy
packages are imported only after parsing.
"""

import logging
import signal
import sys

from singlestrip_bids.cli.parser import _build_parser
from singlestrip_bids.cli.progress import set_console_logging
from singlestrip_bids.errors import UserError
from singlestrip_bids.io.lock import hold_work_dir
from singlestrip_bids.seeding import seed_everything

LOGGER = logging.getLogger("singlestrip_bids")


def main(argv=None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = _build_parser().parse_args(argv)
    # Ctrl-C must stop the run even when a parent started it with SIGINT ignored (which Python then keeps).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    set_console_logging(args.verbose)
    try:
        return _run(args)
    except UserError as exc:
        return _fail(str(exc))
    except (OSError, MemoryError) as exc:  # the machine's limits, not a defect: say which, in one line
        if args.verbose:
            LOGGER.exception("traceback")
        return _fail(_describe_environment_error(exc))
    except KeyboardInterrupt:
        print("singlestrip_bids: interrupted; finished outputs are kept, a rerun with the same work dir "
              "goes on from there", file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    print(f"singlestrip_bids: error: {' '.join(message.split())}", file=sys.stderr)
    return 1


def _describe_environment_error(exc) -> str:
    if isinstance(exc, MemoryError):
        return "out of memory: give the run more memory, or fewer --nprocs"
    where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
    return f"{exc.strerror or exc}{where} (run with -v for the traceback)"


def _run(args) -> int:
    from singlestrip_bids.cli.settings import settings_from_args

    settings = settings_from_args(args)
    _check_paths(settings)
    _remove_stale_temporaries(settings.output_dir)
    participant = settings.analysis_level == "participant" and settings.qc_masks is None
    if participant:
        from singlestrip_bids.workflows.execution import start_worker_server

        start_worker_server(settings.plugin)  # the workers' imports, while the dataset is read
    if not settings.skip_bids_validation:
        from singlestrip_bids.io.validator import validate_bids

        warnings = validate_bids(settings.bids_dir)
        LOGGER.info("BIDS validator: no errors, %d warning(s)", len(warnings))
        for warning in warnings:
            LOGGER.debug("BIDS validator warning: %s", warning)
    if participant:
        from singlestrip_bids.cli.participant import run_participant, select_images

        # Bad images are refused at once. Nothing here draws random numbers, nor imports torch:
        # the workers do the predictions, which are deterministic.
        images = select_images(settings)
        with hold_work_dir(settings.work_dir):
            return run_participant(settings, images)
    seed_everything(settings.random_seed)
    if settings.qc_masks is not None:
        from singlestrip_bids.cli.qc_masks import run_qc_masks

        return run_qc_masks(settings)
    from singlestrip_bids.cli.group import run_group

    with hold_work_dir(settings.work_dir):
        return run_group(settings)


def _check_paths(settings) -> None:
    """The input must be a folder; output and work dir must be writable and outside of it."""
    from singlestrip_bids.io.derivatives import check_output_dir

    if not settings.bids_dir.is_dir():
        raise UserError(f"bids_dir {settings.bids_dir} is not a directory")
    check_output_dir(settings.bids_dir, settings.output_dir, settings.work_dir)


def _remove_stale_temporaries(output_dir) -> None:
    """Temporary files that a killed run of this host left in the output folder."""
    if output_dir.is_dir():
        from singlestrip_bids.io.atomic import remove_stale_temporaries

        for path in remove_stale_temporaries(output_dir):
            LOGGER.info("removed %s, left by an interrupted run", path)
