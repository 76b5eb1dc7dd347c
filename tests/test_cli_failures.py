"""The real CLI when a run cannot finish: refused up front, a failed step, Ctrl-C, SIGKILL, leftovers."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import run_cli, tree_digest
from helpers_bids import DATA_DIR, data_available
from helpers_errors import assert_refused

from singlestrip_bids.io.atomic import _temporary_name
from singlestrip_bids.io.derivatives import image_outputs
from singlestrip_bids.model.bundle import default_bundle_path

pytestmark = pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")
MICE = DATA_DIR / "mouse_epi_sidneyp"
SKIP = "--skip-bids-validation"
MOUSE_RUN = ["--suffix", "T2starw", "--session-label", "1", SKIP]


def _bundle_with(tmp_path, edit):
    """A copy of the shipped bundle whose bundle.json is changed by ``edit(config)``."""
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), bundle)
    config = json.loads((bundle / "bundle.json").read_text())
    edit(config)
    (bundle / "bundle.json").write_text(json.dumps(config))
    return bundle


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda config: config.update(working_voxel_size=0), "voxel_size_mm must be a number in 0.01-30.0, not 0.0"),
        (lambda config: config.update(working_voxel_size="abc"), "no usable inference settings (ValueError"),
        (lambda config: config.update(inference={"voxel_size_mm": 3.0, "size_multiple": 16, "head_margin_mm": None,
                                                 "normalization": "zscore", "mask_threshold": 0.5}),
         "normalization 'zscore' is not 'min_p99_clip'"),
        (lambda config: config.update(inference={"voxel_size_mm": 3.0, "size_multiple": 16, "head_margin_mm": None,
                                                 "normalization": "min_p99_clip", "mask_threshold": "half"}),
         "mask_threshold must be a number"),
    ],
    ids=["voxel size 0", "voxel size abc", "unknown normalisation", "threshold not a number"],
)
def test_a_bundle_with_bad_settings_is_refused_before_the_run(edit, fragment, dataset, tmp_path):
    out = tmp_path / "out"
    completed = run_cli(dataset, out, "participant", SKIP, "--model", _bundle_with(tmp_path, edit),
                        "-w", tmp_path / "w", cwd=tmp_path)
    assert_refused(completed, fragment)
    assert not out.exists()


def test_more_memory_than_given_is_refused_before_the_run(dataset, tmp_path):
    out = tmp_path / "out"
    completed = run_cli(dataset, out, "participant", SKIP, "--mem-gb", "0.05", "-w", tmp_path / "w", cwd=tmp_path)
    assert_refused(completed, "sub-mrtrix_T1w.nii.gz: stripping it needs about 0.")
    assert "more than the 0.05 GB available (--mem-gb)" in completed.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ({"t1w": {"session": {"$ne": "2"}}}, "t1w.session must be a string, a number, null or a list"),
        ({"t1w": ["acq-mprage"]}, "expected {"),
    ],
    ids=["entity value is an object", "query is a list"],
)
def test_a_malformed_filter_file_is_one_usage_line(filters, fragment, dataset, tmp_path):
    filter_file = tmp_path / "filter.json"
    filter_file.write_text(json.dumps(filters))
    completed = run_cli(dataset, tmp_path / "out", "participant", SKIP, "--bids-filter-file", filter_file,
                        cwd=tmp_path)
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert fragment in completed.stderr.splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_a_failed_step_is_one_line_and_leaves_no_half_outputs(tmp_path):
    """sub-01's output folder cannot be made: its step fails in one line, sub-02 keeps a whole set."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub-01").write_text("a file where the subject's folder belongs")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    mask = image_outputs(MICE / "sub-02/ses-1/anat/sub-02_ses-1_T2starw.nii.gz", MICE, out).mask
    mask.parent.mkdir(parents=True)
    stale = _temporary_name(mask)
    stale = stale.with_name(stale.name.replace(f"-{os.getpid()}-", f"-{int(dead.stdout)}-"))
    stale.write_bytes(b"left by a killed run")
    completed = run_cli(MICE, out, "participant", *MOUSE_RUN, "--participant-label", "01", "02", "--nprocs", "2",
                        "-w", tmp_path / "w", cwd=tmp_path)
    assert_refused(completed, "sub_01_ses_1_T2starw_wf.write_derivatives failed: NotADirectoryError: [Errno 20]")
    assert "details in " + str(tmp_path / "w" / "crash" / "crash-") in completed.stderr
    assert not stale.exists()
    done = image_outputs(MICE / "sub-02/ses-1/anat/sub-02_ses-1_T2starw.nii.gz", MICE, out)
    assert all(path.is_file() for path in (done.mask, done.brain, done.figure, done.mask_json, done.brain_json,
                                           done.qc_json))
    assert (out / "dataset_description.json").is_file() and (out / "sub-02.html").is_file()
    assert not [path for path in out.rglob(".tmp-*")]


def _start_run(out, work, labels):
    command = [sys.executable, "-m", "singlestrip_bids", str(MICE), str(out), "participant", *MOUSE_RUN,
               "--participant-label", *labels, "--nprocs", "2", "-w", str(work)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _group_members(pgid):
    """Processes of process group ``pgid`` other than its leader (the run's workers and helpers)."""
    table = subprocess.run(["ps", "-e", "-o", "pid=,pgid=,stat="], capture_output=True, text=True).stdout
    rows = [line.split() for line in table.splitlines() if line.strip()]
    return [int(pid) for pid, group, state in rows if int(group) == pgid and int(pid) != pgid and "Z" not in state]


def _wait_for_a_stripped_image(work, process, timeout=300):
    deadline = time.time() + timeout
    while not list(work.rglob("strip/result_*.pklz")):
        assert process.poll() is None and time.time() < deadline, "the run ended before any image was stripped"
        time.sleep(0.2)
    assert _group_members(process.pid), "no worker processes to stop"


def _wait_until_gone(pgid, seconds=20):
    deadline = time.time() + seconds
    while _group_members(pgid) and time.time() < deadline:
        time.sleep(0.2)
    left = _group_members(pgid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def test_ctrl_c_stops_the_run_at_once_with_exit_130(tmp_path):
    before = tree_digest(MICE / "sub-01")
    out, work = tmp_path / "out", tmp_path / "w"
    process = _start_run(out, work, [f"{n:02d}" for n in range(1, 16)])  # long enough to be interrupted
    _wait_for_a_stripped_image(work, process)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    started = time.time()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and time.time() - started < 15, stderr[-2000:]
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("singlestrip_bids: interrupted; finished outputs are kept")
    assert _wait_until_gone(process.pid) == []
    for qc_json in out.rglob("*_qc.json"):  # every image that has outputs has all of them
        assert qc_json.with_name(qc_json.name.replace("_qc.json", "_mask.nii.gz")).is_file()
    assert not list(out.rglob(".tmp-*")) and tree_digest(MICE / "sub-01") == before


def test_sigkill_of_the_run_ends_its_workers(tmp_path):
    out, work = tmp_path / "out", tmp_path / "w"
    process = _start_run(out, work, ["01", "02", "03", "04"])
    _wait_for_a_stripped_image(work, process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert _wait_until_gone(process.pid) == [], "workers outlived a killed run"
    process.communicate(timeout=30)  # the pipes close once no worker holds them


def test_a_filter_key_for_no_suffix_of_the_run_is_warned(dataset, tmp_path, caplog):
    """A typo in a filter key (or a key for another suffix) is said, not silently ignored."""
    from singlestrip_bids.cli.participant import select_images
    from singlestrip_bids.cli.settings import RunSettings

    settings = RunSettings(bids_dir=dataset, output_dir=tmp_path / "out", analysis_level="participant",
                           bids_filters={"t1w": {"session": None}, "t1W_typo": {"acquisition": "x"}})
    with caplog.at_level("WARNING", logger="singlestrip_bids"):
        images = select_images(settings)
    assert [image.name for image in images] == ["sub-mrtrix_T1w.nii.gz"]
    assert "key 't1W_typo' is not a suffix of this run (--suffix T1w); it is ignored" in caplog.text


def test_of_several_bad_images_read_in_parallel_the_first_in_order_is_named(tmp_path):
    """The images are read by several threads; the error is still the first bad image of the list."""
    import nibabel as nib
    import numpy as np
    from helpers_bids import make_bids_dataset

    from singlestrip_bids.cli.participant import select_images
    from singlestrip_bids.cli.settings import RunSettings
    from singlestrip_bids.errors import UserError

    bids_dir = make_bids_dataset(tmp_path / "ds", subjects=("mrtrix", "colin", "pcasl"))
    colin = bids_dir / "sub-colin" / "anat" / "sub-colin_T1w.nii.gz"
    nib.save(nib.Nifti1Image(np.full((32, 32, 32), 7.0, np.float32), np.eye(4)), colin)
    pcasl = next((bids_dir / "sub-pcasl").rglob("*_bold.nii.gz"))
    pcasl.write_bytes(pcasl.read_bytes()[: pcasl.stat().st_size // 3])  # truncated: found sooner than the constant
    settings = RunSettings(bids_dir=bids_dir, output_dir=tmp_path / "out", analysis_level="participant",
                           suffix=["T1w", "bold"], nprocs=3)
    for _ in range(3):
        with pytest.raises(UserError, match="sub-colin_T1w.nii.gz: no anatomy to strip"):
            select_images(settings)
    colin.unlink()
    shutil.copyfile(DATA_DIR / "colin27_ch2/ch2.nii.gz", colin)
    with pytest.raises(UserError, match="sub-pcasl_task-rest_bold.nii.gz: truncated or corrupt"):
        select_images(settings)
