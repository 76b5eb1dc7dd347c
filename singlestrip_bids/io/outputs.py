"""One image's derivatives as the participant level writes them: mask, brain image, figure, sidecars, QC JSON."""

import platform
from importlib import metadata
from pathlib import Path

from singlestrip_bids import __version__

# Step statistics that describe how a result was made rather than the mask itself.
PROVENANCE_KEYS = ("seconds", "device", "precision", "model_id")
VERSIONED_PACKAGES = ("numpy", "scipy", "nibabel", "torch", "nipype", "pybids")


def write_image_derivatives(source_file, bids_dir, output_dir, *, mask_file, brain_file, figure_file, steps,
                            bids_meta=None, settings=None):
    """Copy one image's mask, brain image and figure to their derivative names; write sidecars and QC JSON.

    ``steps`` maps step name → its statistics (``inference.strip`` and ``qc.score`` results).
    The six files are written all or none (``io.atomic.atomic_write_set``): a full disk leaves no
    mask without its QC JSON. Returns the ``io.derivatives.ImageOutputs``.
    """
    from singlestrip_bids.io.atomic import atomic_write_set, json_bytes
    from singlestrip_bids.io.derivatives import image_outputs

    outputs = image_outputs(source_file, bids_dir, output_dir)
    document = qc_document(outputs, steps=steps, bids_meta=bids_meta, settings=settings)
    atomic_write_set({
        outputs.mask: Path(mask_file).read_bytes(),
        outputs.brain: Path(brain_file).read_bytes(),
        outputs.figure: Path(figure_file).read_bytes(),
        outputs.mask_json: json_bytes(outputs.mask_metadata()),
        outputs.brain_json: json_bytes(outputs.brain_metadata()),
        outputs.qc_json: json_bytes(document),
    })
    return outputs


def qc_document(outputs, *, steps, bids_meta=None, settings=None) -> dict:
    """The per-image QC JSON (MRIQC-like): measures at the top, ``bids_meta`` and ``provenance``.

    ``outputs``: the image's ``io.derivatives.ImageOutputs``; ``steps``: step name → statistics
    dict. Measures are every statistic except ``PROVENANCE_KEYS`` (e.g. ``brain_volume_ml``,
    ``n_components_removed``, ``nonfinite_voxels``, ``ae_dice``, ``qc_pass``, ``qc_threshold``);
    ``seconds_per_volume`` is the sum of the steps' seconds.
    """
    measures = {key: value for stats in steps.values() for key, value in stats.items() if key not in PROVENANCE_KEYS}
    made_by = {key: stats[key] for stats in steps.values() for key in PROVENANCE_KEYS[1:] if key in stats}
    return {
        **measures,
        "bids_name": Path(outputs.source_uri).name.split(".")[0],
        "seconds_per_volume": sum(stats.get("seconds", 0.0) for stats in steps.values()),
        "bids_meta": bids_meta or {},
        "provenance": {
            "software": "singlestrip_bids",
            "version": __version__,
            "source": outputs.source_uri,
            **made_by,
            "settings": settings or {},
            "timings_s": {name: stats["seconds"] for name, stats in steps.items() if "seconds" in stats},
            "versions": {"python": platform.python_version(), **{name: _version(name) for name in VERSIONED_PACKAGES}},
        },
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def new_run_id(level: str) -> str:
    """``<level>-<UTC time>``, e.g. ``participant-20261202T203450Z``: names the run's config and log files."""
    import time

    return f"{level}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def run_log_path(output_dir, run_id: str) -> Path:
    """``output_dir/logs/<run id>.log``: the run's full log (Nipype's records included)."""
    return Path(output_dir) / "logs" / f"{run_id}.log"


def write_run_config(output_dir, run_id: str, settings: dict) -> Path:
    """The run's resolved settings as ``output_dir/logs/<run id>_config.json`` (as fMRIPrep keeps its
    config beside its outputs): the options after defaults and checks, the version, the machine.
    Written atomically; returns the path."""
    from singlestrip_bids.io.atomic import atomic_write_json

    document = {"level": run_id.split("-", 1)[0], "run_id": run_id, "singlestrip_bids_version": __version__,
                "python": platform.python_version(), "machine": platform.machine(), "settings": settings}
    return atomic_write_json(document, Path(output_dir) / "logs" / f"{run_id}_config.json")
