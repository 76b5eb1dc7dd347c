"""Participant level: select and check the images, run the Nipype workflow, say where the outputs are."""

import logging
import os
from pathlib import Path

LOGGER = logging.getLogger("singlestrip_bids")


def select_images(args) -> list[Path]:
    """The images selected by ``args`` (parsed and checked by ``cli.run``), each read once.

    Reading them all before anything is written makes a bad image stop the run with a one-line
    ``UserError`` and an untouched output folder.
    """
    from singlestrip_bids.io.bids import collect_images, load_bids_filters
    from singlestrip_bids.io.nifti import check_image_content, load_image

    filters = load_bids_filters(args.bids_filter_file) if args.bids_filter_file else None
    images = collect_images(args.bids_dir, participant_labels=args.participant_label,
                            session_labels=args.session_label, suffixes=args.suffix, bids_filters=filters)
    for image in images:
        check_image_content(image, load_image(image))
    return images


def run_participant(args, images) -> int:
    """Strip ``images`` (from ``select_images``) with the Nipype workflow; returns the exit code 0."""
    from singlestrip_bids.io.bids import bids_metadata
    from singlestrip_bids.io.derivatives import write_dataset_description
    from singlestrip_bids.io.outputs import write_run_config
    from singlestrip_bids.model.bundle import resolve_bundle_path
    from singlestrip_bids.model.device import resolve_device
    from singlestrip_bids.workflows.participant import check_plugin, init_participant_wf, run_workflow

    LOGGER.info("%d image(s) selected", len(images))
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
    write_run_config(args.output_dir, "participant", {**vars(args), "model": bundle_path, "nprocs": nprocs})
    graph = run_workflow(workflow, work_dir=args.work_dir, plugin=args.plugin, plugin_args=args.plugin_args,
                         nprocs=nprocs, mem_gb=args.mem_gb, verbose=args.verbose)
    _print_summary(graph, workflow.name, args.output_dir)
    return 0


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
