"""io.atomic: files appear whole or not at all, and a killed writer's temporary files are cleaned up."""

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from singlestrip_bids.io.atomic import (
    _temporary_name,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_nifti,
    atomic_write_set,
    remove_stale_temporaries,
)


def test_atomic_json_sorted_numpy_and_no_leftovers(tmp_path):
    path = atomic_write_json({"b": np.float32(0.5), "a": np.arange(3), "c": np.bool_(True), "d": tmp_path},
                             tmp_path / "deep" / "x.json")
    text = path.read_text()
    assert json.loads(text) == {"a": [0, 1, 2], "b": 0.5, "c": True, "d": str(tmp_path)}
    assert text.index('"a"') < text.index('"b"') and '\n  "a"' in text
    assert os.listdir(path.parent) == ["x.json"]


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = atomic_write_bytes(b"old", tmp_path / "x.json")
    with pytest.raises(TypeError):
        atomic_write_json({"bad": object()}, path)

    class Broken:
        def to_filename(self, filename):
            open(filename, "wb").write(b"partial")
            raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write_nifti(Broken(), tmp_path / "x.nii.gz")
    assert path.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["x.json"]


def test_atomic_write_nifti_round_trip(tmp_path):
    img = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.diag([2.0, 2.0, 3.0, 1.0]))
    path = atomic_write_nifti(img, tmp_path / "sub-01_T1w.nii.gz")
    loaded = nib.load(path)
    assert np.array_equal(np.asanyarray(loaded.dataobj), np.asanyarray(img.dataobj))
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip, chosen from the final name


def test_write_set_is_all_or_none(tmp_path):
    kept = atomic_write_bytes(b"old mask", tmp_path / "sub-01" / "mask.nii.gz")
    blocker = tmp_path / "sub-01" / "figures"
    blocker.write_bytes(b"a file where a folder is needed")
    with pytest.raises(OSError):
        atomic_write_set({kept: b"new mask", tmp_path / "sub-01" / "qc.json": b"{}",
                          blocker / "mask.png": b"png"})
    assert kept.read_bytes() == b"old mask"
    assert sorted(os.listdir(kept.parent)) == ["figures", "mask.nii.gz"]
    written = atomic_write_set({kept: b"new mask", tmp_path / "sub-01" / "qc.json": b"{}"})
    assert written == [kept, tmp_path / "sub-01" / "qc.json"] and kept.read_bytes() == b"new mask"


def test_stale_temporaries_of_dead_writers_only(tmp_path):
    """A temporary name of a killed process goes; one of a live process, or another host's, stays."""
    target = tmp_path / "sub-01" / "anat" / "sub-01_desc-brain_mask.nii.gz"
    target.parent.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    mine = _temporary_name(target)
    stale = mine.with_name(mine.name.replace(f"-{os.getpid()}-", f"-{dead_pid}-"))
    other_host = stale.with_name(".tmp-00000000" + stale.name[len(".tmp-00000000"):])
    for path in (mine, stale, other_host):
        path.write_bytes(b"partial")
    user_file = target.with_name(".hidden_by_the_user")
    user_file.write_bytes(b"keep")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(path.name for path in target.parent.iterdir()) == sorted(
        [mine.name, other_host.name, user_file.name])
