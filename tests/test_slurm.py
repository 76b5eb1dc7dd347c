"""HPC for real: a one-node SLURM cluster runs the participant level as the docs' job array and
through Nipype's SLURM plugin; both give the masks a MultiProc run gives.

Marked ``slurm``: the cluster (``slurm-wlm``, ``munge``, installed with apt-get when missing) needs
root. Without root the tests skip, except under CI=true, where a cluster that cannot start fails.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import run_cli
from helpers_bids import DATA_DIR, data_available, make_bids_dataset
from slurm.cluster import SetupError, SlurmCluster, install_slurm

from singlestrip_bids.io.derivatives import image_outputs, subject_report_path
from singlestrip_bids.io.validator import validate_bids

pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")]
SUBJECTS = ("mrtrix", "ms01", "ms03")  # three small real T1w heads
USAGE = Path(__file__).parents[1] / "docs" / "usage.md"


def job_array_script() -> str:
    """The job-array script of docs/usage.md, as a user copies it."""
    text = USAGE.read_text()
    start = text.index("Job array on SLURM")
    return re.search(r"```bash\n(.*?)```", text[start:], re.S).group(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        if os.geteuid() != 0:
            raise SetupError("a SLURM cluster needs root")
        install_slurm()
        cluster = SlurmCluster(Path(tmp_path_factory.mktemp("slurm", numbered=True))).start()
    except SetupError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM tests: {exc}")
        pytest.skip(str(exc))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_bids_dataset(tmp_path_factory.mktemp("raw") / "ds", subjects=SUBJECTS, with_masks=False)


@pytest.fixture(scope="module")
def multiproc(dataset, tmp_path_factory):
    """The reference: the same data through the default MultiProc plugin."""
    root = tmp_path_factory.mktemp("multiproc")
    completed = run_cli(dataset, root / "out", "participant", "--nprocs", "2", "-w", root / "work", cwd=root)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return root / "out"


def _env(cluster):
    """The user's shell: this Python's scripts on PATH, the cluster's SLURM_CONF."""
    return {**cluster.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def assert_same_outputs(out, reference, dataset):
    """Every output of every image present and complete, masks identical to the reference run's."""
    for image in sorted(dataset.glob("sub-*/anat/*_T1w.nii.gz")):
        ours, theirs = image_outputs(image, dataset, out), image_outputs(image, dataset, reference)
        for kind in ("mask", "brain", "figure", "mask_json", "brain_json", "qc_json"):
            assert getattr(ours, kind).is_file(), f"{image.name}: no {kind}"
        mask, expected = nib.load(ours.mask), nib.load(theirs.mask)
        assert np.array_equal(np.asanyarray(mask.dataobj), np.asanyarray(expected.dataobj)), image.name
        assert np.array_equal(mask.affine, expected.affine)
        qc, qc_expected = (json.loads(path.read_text()) for path in (ours.qc_json, theirs.qc_json))
        assert qc["brain_volume_ml"] == qc_expected["brain_volume_ml"] and qc["ae_dice"] == qc_expected["ae_dice"]
        label = image.name.split("_")[0]
        assert subject_report_path(out, label).is_file()
    description = json.loads((out / "dataset_description.json").read_text())
    assert description == json.loads((reference / "dataset_description.json").read_text())
    assert not list(out.rglob(".tmp-*"))


def test_the_docs_job_array_writes_one_output_folder(cluster, dataset, multiproc, tmp_path):
    """Three array tasks at once (one CPU each on the two-CPU node) write into one output folder."""
    script = tmp_path / "singlestrip_array.sbatch"
    script.write_text(job_array_script())
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    scratch.mkdir()
    completed = subprocess.run(
        ["sbatch", "--wait", f"--array=0-{len(SUBJECTS) - 1}", "--cpus-per-task=1", f"--chdir={tmp_path}",
         f"--output={tmp_path}/task-%a.log", f"--export=ALL,BIDS={dataset},OUT={out},SCRATCH={scratch}",
         str(script)], env=_env(cluster), capture_output=True, text=True, timeout=1200)
    logs = {path.name: path.read_text()[-1500:] for path in tmp_path.glob("task-*.log")}
    assert completed.returncode == 0, (completed.stderr, logs)
    assert len(logs) == len(SUBJECTS)
    assert sorted(path.name for path in scratch.iterdir()) == [
        f"singlestrip-work-{completed.stdout.split()[-1]}-{task}" for task in range(len(SUBJECTS))]
    assert_same_outputs(out, multiproc, dataset)
    validate_bids(out)  # the derivatives, dataset_description.json included, pass the BIDS validator


def test_nipype_slurm_plugin_runs_the_nodes_as_jobs(cluster, dataset, multiproc, tmp_path):
    out, work = tmp_path / "out", tmp_path / "shared" / "work"  # a work dir every node sees
    env = _env(cluster)
    command = [sys.executable, "-m", "singlestrip_bids", str(dataset), str(out), "participant", "--plugin", "SLURM",
               "--plugin-args", json.dumps({"sbatch_args": "--cpus-per-task=1 --mem=2G"}), "-w", str(work)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    job_logs = list(work.rglob("slurm-*.out"))
    assert len(job_logs) >= len(SUBJECTS), "each image's strip node is one job"
    assert_same_outputs(out, multiproc, dataset)
