"""cli.parser: the BIDS Apps options, their defaults and refusals; --help/--version are instant."""

import subprocess
import sys
from pathlib import Path

import pytest

from singlestrip_bids import __version__
from singlestrip_bids.cli.parser import _build_parser

BASE = ["bids", "out", "participant"]


def parse(*extra):
    return _build_parser().parse_args([*BASE, *extra])


def test_positionals_and_defaults():
    args = parse()
    assert (args.bids_dir, args.output_dir, args.analysis_level) == (Path("bids"), Path("out"), "participant")
    assert args.participant_label is None and args.session_label is None and args.suffix is None
    assert args.work_dir == Path("work_dir") and args.plugin == "MultiProc" and args.plugin_args == {}
    assert args.device == "auto" and args.model is None and args.border == 0.0 and args.random_seed == 0
    assert (args.top_k, args.ssl_rounds, args.ssl_ranking, args.qc_ae) == (10, 1, "ae", "2d")
    assert not (args.skip_bids_validation or args.resume or args.from_scratch)


@pytest.mark.parametrize(
    ("argv", "attribute", "expected"),
    [
        (["--participant-label", "01", "sub-02"], "participant_label", ["01", "sub-02"]),
        (["--participant_label", "01", "--participant-label", "03"], "participant_label", ["01", "03"]),
        (["--session-label", "ses-1", "2"], "session_label", ["ses-1", "2"]),
        (["--suffix", "T1w", "FLAIR", "--suffix", "bold"], "suffix", ["T1w", "FLAIR", "bold"]),
        (["--skip-bids-validation"], "skip_bids_validation", True),
        (["-w", "/scratch/w"], "work_dir", Path("/scratch/w")),
        (["--work-dir", "w"], "work_dir", Path("w")),
        (["--nprocs", "4"], "nprocs", 4),
        (["--omp-nthreads", "2"], "omp_nthreads", 2),
        (["--mem-gb", "7.5"], "mem_gb", 7.5),
        (["--device", "cpu"], "device", "cpu"),
        (["--precision", "bf16"], "precision", "bf16"),
        (["--model", "m/final"], "model", Path("m/final")),
        (["--model", "synthetic"], "model", Path("synthetic")),
        (["--init", "scratch"], "init", "scratch"),
        (["--init", "synthetic"], "init", "synthetic"),
        (["--border", "-2.5"], "border", -2.5),
        (["--random-seed", "7"], "random_seed", 7),
        (["--plugin", "SLURM", "--plugin-args", '{"sbatch_args": "-p short"}'], "plugin_args",
         {"sbatch_args": "-p short"}),
        (["-vv"], "verbose", 2),
        (["--qc-masks", "deriv"], "qc_masks", Path("deriv")),
        (["--labeled-subject", "01"], "labeled_subject", "01"),
        (["--labeled-mask", "m.nii.gz"], "labeled_mask", Path("m.nii.gz")),
        (["--train-steps", "500"], "train_steps", 500),
        (["--batch-size", "2"], "batch_size", 2),
        (["--working-voxel-size", "1.5"], "working_voxel_size", 1.5),
        (["--real-image-probability", "0.5"], "real_image_probability", 0.5),
        (["--ssl-learning-rate", "3e-5"], "ssl_learning_rate", 3e-5),
        (["--resume"], "resume", True),
        (["--qc-ae", "3d"], "qc_ae", "3d"),
        (["--qc-ae-steps", "50"], "qc_ae_steps", 50),
        (["--top-k", "3"], "top_k", 3),
        (["--ssl-rounds", "0"], "ssl_rounds", 0),
        (["--ssl-ranking", "tta"], "ssl_ranking", "tta"),
        (["--ssl-ranking", "estimator"], "ssl_ranking", "estimator"),
        (["--qc-estimator-steps", "0"], "qc_estimator_steps", 0),
        (["--from-scratch"], "from_scratch", True),
    ],
)
def test_options(argv, attribute, expected):
    assert getattr(parse(*argv), attribute) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["bids", "out"],  # no analysis level
        ["bids", "out", "session"],
        [*BASE, "--nprocs", "0"],
        [*BASE, "--omp-nthreads", "two"],
        [*BASE, "--mem-gb", "-1"],
        [*BASE, "--device", "tpu"],
        [*BASE, "--precision", "fp16"],
        [*BASE, "--plugin-args", "{not json"],
        [*BASE, "--plugin-args", "[1, 2]"],
        [*BASE, "--qc-ae", "4d"],
        [*BASE, "--ssl-rounds", "-1"],
        [*BASE, "--top-k", "0"],
        [*BASE, "--no-such-flag"],
        [*BASE, "--border", "nan"],
        [*BASE, "--ssl-learning-rate", "inf"],
        [*BASE, "--mem-gb", "inf"],
        [*BASE, "--random-seed", "-1"],
        [*BASE, "--bids-filter-file", "no/such/filter.json"],
        [*BASE, "--init", "no/such/bundle"],
        [*BASE, "--real-image-probability", "1.5"],
        [*BASE, "--real-image-probability", "-0.1"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as raised:
        _build_parser().parse_args(argv)
    assert raised.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_the_filter_file_is_read_by_the_parser(tmp_path):
    path = tmp_path / "filter.json"
    path.write_text('{"T1w": {"acquisition": "mprage", "session": null, "run": [1, 2]}}')
    assert parse("--bids-filter-file", str(path)).bids_filters == {
        "t1w": {"acquisition": "mprage", "session": None, "run": [1, 2]}}


def test_settings_are_built_once_and_frozen(tmp_path):
    """Every parser option has its settings field (and no field lacks an option); paths and labels normalised."""
    from dataclasses import FrozenInstanceError, fields

    from singlestrip_bids.cli.settings import RunSettings, settings_from_args

    parser = _build_parser()
    dests = {action.dest for action in parser._actions if action.dest not in ("help", "version")}
    assert dests == {field.name for field in fields(RunSettings)}
    args = parser.parse_args(["bids", "out", "participant", "--participant-label", "sub-01", "02", "01",
                              "--session-label", "ses-a", "-w", "~/w"])
    settings = settings_from_args(args)
    assert settings.bids_dir.is_absolute() and settings.output_dir == (Path.cwd() / "out")
    assert settings.work_dir == Path("~/w").expanduser()
    assert (settings.participant_label, settings.session_label, settings.suffix) == (("01", "02"), ("a",), ("T1w",))
    with pytest.raises(FrozenInstanceError):
        settings.border = 2.0
    assert settings.to_dict()["bids_dir"] == str(settings.bids_dir)


HEAVY = ("torch", "nipype", "bids", "nibabel", "scipy", "numpy")
PROBE = """
import sys, time
start = time.process_time()
try:
    from singlestrip_bids.cli.run import main
    main([{flag!r}])
except SystemExit as exit:
    seconds = time.process_time() - start
    heavy = ",".join(sorted(name for name in {heavy!r} if name in sys.modules))
    print(exit.code, seconds, heavy, file=sys.stderr)
"""


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_are_instant(flag):
    """They answer without importing heavy packages, in < 0.3 s of CPU time (import included).

    CPU time rather than wall time: other jobs on a busy CI machine must not make this flaky.
    """
    completed = subprocess.run([sys.executable, "-c", PROBE.format(flag=flag, heavy=HEAVY)],
                               capture_output=True, text=True, check=True, timeout=60)
    code, seconds, heavy = (completed.stderr.strip().split("\n")[-1].split(" ") + [""])[:3]
    assert code == "0" and heavy == "", completed.stderr
    assert float(seconds) < 0.3, f"{flag} used {float(seconds):.2f} s of CPU"
    if flag == "--version":
        assert completed.stdout.strip() == f"singlestrip_bids {__version__}"
    else:
        assert "--participant-label" in completed.stdout and "--qc-masks" in completed.stdout


def test_a_shipped_models_name_stays_a_name_in_the_settings(tmp_path):
    from singlestrip_bids.cli.settings import settings_from_args

    settings = settings_from_args(parse("--model", "synthetic"))
    assert settings.model == Path("synthetic")
    assert settings_from_args(parse("--model", "m/final")).model.is_absolute()
