"""Atomic writes: each file goes to a hidden temporary name in its folder, then ``os.replace``.

A temporary name, ``.tmp-<host>-<pid>-<random>.<name>``, says which process wrote it, so a later
run removes those that a killed process left behind (:func:`remove_stale_temporaries`) and never
touches those of a run still writing on another node or in another process.
"""

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

from singlestrip_bids.io.lock import process_alive

_TEMPORARY = re.compile(r"^\.tmp-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8}\.")


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _temporary_name(path: Path) -> Path:
    # Hidden (ignored by BIDS tools) and ending like the target, so writers pick the same format.
    return path.with_name(f".tmp-{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.{path.name}")


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _atomic(path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_name(path)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def atomic_write_bytes(data: bytes, path) -> Path:
    """Write ``data`` to ``path`` atomically; parent folders are created. Returns the path."""
    return _atomic(path, lambda temporary: _write_bytes(temporary, data))


def json_bytes(obj) -> bytes:
    """``obj`` as JSON text (sorted keys, indent 2, numpy scalars/arrays and paths converted)."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode()


def atomic_write_json(obj, path) -> Path:
    """Write ``obj`` as JSON (:func:`json_bytes`) atomically."""
    return atomic_write_bytes(json_bytes(obj), path)


def atomic_write_nifti(img, path) -> Path:
    """Save a nibabel image atomically (format from the extension, e.g. ``.nii.gz``)."""
    return _atomic(path, lambda temporary: img.to_filename(temporary))


def atomic_write_set(contents: dict) -> list[Path]:
    """Write several files (path → bytes) all or none: every one is staged under its temporary name
    first, and only when all are staged are they renamed into place. A failure while staging (a full
    disk, a folder that cannot be made) leaves the targets as they were. Returns the paths."""
    staged = []
    try:
        for path, data in contents.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            staged.append((_temporary_name(path), path))
            _write_bytes(staged[-1][0], data)
        for temporary, path in staged:
            os.replace(temporary, path)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
    return [path for _, path in staged]


def atomic_write_tsv(rows, path) -> Path:
    """Rows (dicts with the same keys, the first column first) as a tab-separated table; None as ``n/a``."""
    columns = list(rows[0]) if rows else ["bids_name"]
    lines = ["\t".join(columns)] + ["\t".join("n/a" if row.get(c) is None else str(row[c]) for c in columns)
                                    for row in rows]
    return atomic_write_bytes(("\n".join(lines) + "\n").encode(), path)


def atomic_copy_folder(source, target) -> Path:
    """Copy a folder (built beside ``target``, then renamed into place, replacing what was there)."""
    target = Path(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        shutil.copytree(source, staging / "copy")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / "copy", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def remove_stale_temporaries(folder) -> list[Path]:
    """Delete the temporary files under ``folder`` whose writer, a process of this host, is gone.

    Returns the deleted paths. Files of live processes and of other hosts are kept.
    """
    host, removed = _host_tag(), []
    for path in Path(folder).rglob(".tmp-*"):
        match = _TEMPORARY.match(path.name)
        if match and match["host"] == host and not process_alive(int(match["pid"])) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
