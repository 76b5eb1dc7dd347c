"""Fixtures shared by the CLI and workflow tests: a tiny model bundle, the real CLI, file digests."""

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """An untrained, seeded 3-level U-Net on a 4 mm grid with a 2D QC autoencoder: fast, not accurate."""
    import torch

    from singlestrip_bids.model.autoencoder import build_autoencoder, default_config
    from singlestrip_bids.model.bundle import save_bundle
    from singlestrip_bids.model.unet import UNet, UNetConfig

    torch.manual_seed(0)
    unet = UNet(UNetConfig(levels=3, base_features=4, max_features=8))
    qc_ae = build_autoencoder({**default_config("2d", 4.0), "channels": [4, 8, 16], "latent": 8})
    return save_bundle(tmp_path_factory.mktemp("bundle") / "tiny", name="tiny", unet=unet, voxel_size=4.0,
                       qc_ae=qc_ae)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """One real oblique T1w head (96x128x128, float32) as a valid BIDS dataset (a module may override it)."""
    from helpers_bids import make_bids_dataset

    return make_bids_dataset(tmp_path_factory.mktemp("raw") / "ds", subjects=("mrtrix",))


def run_cli(*args, cwd=None, timeout=1200) -> subprocess.CompletedProcess:
    """Run ``python -m singlestrip_bids ARGS`` as a user would; text output captured.

    The CLI runs in its own process group, so that a timeout also ends its Nipype worker processes.
    """
    command = [sys.executable, "-m", "singlestrip_bids", *map(str, args)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                          start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def tree_digest(root) -> dict:
    """Relative path → sha256 of every file under ``root`` (to prove a folder was not modified)."""
    root = Path(root)
    return {path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}
