"""Participant level: select and check the images, run the Nipype workflow, say where the outputs are.

Also the pure functions behind the workflow's derivatives writer: ``write_image_derivatives`` and
the QC JSON it holds (``qc_document``).
"""

import logging
import os
import platform
from importlib import metadata
from pathlib import Path

from singlestrip_bids import __version__

LOGGER = logging.getLogger("singlestrip_bids")
# Step statistics that describe how a result was made rather than the mask itself.
PROVENANCE_KEYS = ("seconds", "device", "model_id")
VERSIONED_PACKAGES = ("numpy", "scipy", "nibabel", "torch", "nipype", "pybids")


def select_images(args) -> list[Path]:
    """The images selected by ``args`` (parsed and checked by ``cli.run``), each read once.

    Reading them all before anything is written makes a bad image stop the run with a one-line
    ``UserError`` and an untouched output folder.
    """
    from singlestrip_bids.io.bids import collect_images, load_bids_filters
    from singlestrip_bids.io.nifti import load_image

    filters = load_bids_filters(args.bids_filter_file) if args.bids_filter_file else None
    images = collect_images(args.bids_dir, participant_labels=args.participant_label,
                            session_labels=args.session_label, suffixes=args.suffix, bids_filters=filters)
    for image in images:
        load_image(image)
    LOGGER.info("%d image(s) selected", len(images))
    return images


def run_participant(args, images) -> int:
    """Strip ``images`` (from ``select_images``) with the Nipype workflow; returns the exit code 0."""
    from singlestrip_bids.io.derivatives import write_dataset_description
    from singlestrip_bids.model.device import resolve_device
    from singlestrip_bids.workflows.participant import check_plugin, init_participant_wf, run_workflow

    check_plugin(args.plugin)
    resolve_device(args.device)
    bundle_path = resolve_bundle_path(args.model, args.output_dir)
    LOGGER.info("model bundle: %s", bundle_path)
    nprocs = args.nprocs or os.cpu_count() or 1
    workflow = init_participant_wf(
        images=images, output_dir=args.output_dir, bids_dir=args.bids_dir, bundle_path=bundle_path,
        device=args.device, border_mm=args.border, omp_nthreads=min(args.omp_nthreads or nprocs, nprocs),
        bids_meta=bids_metadata(args.bids_dir, images),
    )
    write_dataset_description(args.output_dir, args.bids_dir)
    graph = run_workflow(workflow, work_dir=args.work_dir, plugin=args.plugin, plugin_args=args.plugin_args,
                         nprocs=nprocs, mem_gb=args.mem_gb, verbose=args.verbose)
    _print_summary(graph, workflow.name, args.output_dir)
    return 0


def resolve_bundle_path(model, output_dir) -> Path:
    """``--model`` if given, else ``output_dir/models/final`` of a group run if present, else the shipped model."""
    from singlestrip_bids.model.bundle import default_bundle_path

    if model is not None:
        return Path(model)
    trained = Path(output_dir) / "models" / "final"
    if (trained / "bundle.json").is_file():
        return trained
    return default_bundle_path()


def bids_metadata(bids_dir, images) -> dict:
    """Source path (str) → its BIDS entities and sidecar metadata (with inheritance), via PyBIDS."""
    from bids import BIDSLayout

    layout = BIDSLayout(bids_dir, validate=False)
    result = {}
    for image in images:
        bids_file = layout.get_file(str(image))
        result[str(image)] = {**bids_file.get_entities(metadata=False), **bids_file.get_metadata()}
    return result


def write_image_derivatives(source_file, bids_dir, output_dir, *, mask_file, brain_file, figure_file, steps,
                            bids_meta=None, settings=None):
    """Copy one image's mask, brain image and figure to their derivative names; write sidecars and QC JSON.

    ``steps`` maps step name → its statistics (``inference.strip`` and ``qc.score`` results).
    Every file is written atomically. Returns the ``io.derivatives.ImageOutputs``.
    """
    from singlestrip_bids.io.derivatives import atomic_write_bytes, atomic_write_json, image_outputs

    outputs = image_outputs(source_file, bids_dir, output_dir)
    for produced, target in ((mask_file, outputs.mask), (brain_file, outputs.brain), (figure_file, outputs.figure)):
        atomic_write_bytes(Path(produced).read_bytes(), target)
    atomic_write_json(outputs.mask_metadata(), outputs.mask_json)
    atomic_write_json(outputs.brain_metadata(), outputs.brain_json)
    atomic_write_json(qc_document(outputs, steps=steps, bids_meta=bids_meta, settings=settings), outputs.qc_json)
    return outputs


def qc_document(outputs, *, steps, bids_meta=None, settings=None) -> dict:
    """The per-image QC JSON (MRIQC-like): measures at the top, ``bids_meta`` and ``provenance``.

    ``outputs``: the image's ``io.derivatives.ImageOutputs``; ``steps``: step name → statistics
    dict. Measures are every statistic except ``PROVENANCE_KEYS`` (e.g. ``brain_volume_ml``,
    ``n_components_removed``, ``nonfinite_voxels``, ``ae_dice``, ``qc_pass``, ``qc_threshold``);
    ``seconds_per_volume`` is the sum of the steps' seconds.
    """
    measures = {key: value for stats in steps.values() for key, value in stats.items() if key not in PROVENANCE_KEYS}
    made_by = {key: stats[key] for stats in steps.values() for key in ("device", "model_id") if key in stats}
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


def _print_summary(graph, workflow_name: str, output_dir) -> None:
    """Tell the user where the masks and each subject's report are, and how many QC flagged."""
    import json

    # The outputnode is an identity node, which Nipype leaves out of the executed graph: read the merges.
    nodes = {node.fullname: node for node in graph.nodes()}
    mask_files, qc_files, report_files = (nodes[f"{workflow_name}.merge_{kind}"].result.outputs.out
                                          for kind in ("masks", "qc", "reports"))
    print(f"Brain masks written to {output_dir}:")
    for mask_file in mask_files:
        print(f"  {Path(mask_file).relative_to(output_dir)}")
    print("Reports: " + ", ".join(report_files))
    flagged = sum(json.loads(Path(qc_file).read_text()).get("qc_pass") is False for qc_file in qc_files)
    if flagged:
        print(f"{flagged} mask(s) flagged by quality control: check them in the reports.")
