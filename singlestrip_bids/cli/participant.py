"""Participant level: select and check the images, run the Nipype workflow, say where the outputs are."""

import logging
import os
from pathlib import Path

LOGGER = logging.getLogger("singlestrip_bids")


def select_images(settings) -> list[Path]:
    """The images selected by ``settings`` (parsed and checked by ``cli.run``), each read once.

    Reading them all before anything is written makes a bad image stop the run with a one-line
    ``UserError`` (the first bad one in the list's order) and an untouched output folder. They are
    read by ``--nprocs`` threads: decompressing and checking release the GIL.
    """
    from concurrent.futures import ThreadPoolExecutor

    from singlestrip_bids.io.bids import collect_images, unused_filter_keys
    from singlestrip_bids.io.nifti import check_image_content, load_image

    filters = settings.bids_filters
    for key in unused_filter_keys(filters or {}, settings.suffix):
        LOGGER.warning("--bids-filter-file: key %r is not a suffix of this run (--suffix %s); it is ignored",
                       key, " ".join(settings.suffix))
    images = collect_images(settings.bids_dir, participant_labels=settings.participant_label,
                            session_labels=settings.session_label, suffixes=settings.suffix, bids_filters=filters)
    with ThreadPoolExecutor(max_workers=settings.nprocs or os.cpu_count() or 1) as pool:
        for _ in pool.map(lambda image: check_image_content(image, load_image(image)), images):
            pass
    return images


def run_participant(settings, images) -> int:
    """Strip ``images`` (from ``select_images``) with the Nipype workflow; returns the exit code 0."""
    from singlestrip_bids.cli.progress import ImageProgress
    from singlestrip_bids.inference.memory import check_prediction_memory
    from singlestrip_bids.io.bids import bids_metadata
    from singlestrip_bids.io.derivatives import image_outputs, write_dataset_description
    from singlestrip_bids.io.outputs import new_run_id, run_log_path, write_run_config
    from singlestrip_bids.model.bundle import check_bundle, resolve_bundle_path
    from singlestrip_bids.model.device import check_device
    from singlestrip_bids.workflows.execution import check_plugin, run_workflow
    from singlestrip_bids.workflows.participant import image_workflow_name, init_participant_wf

    LOGGER.info("%d image(s) selected", len(images))
    check_plugin(settings.plugin)
    check_device(settings.device)
    bundle_path = resolve_bundle_path(settings.model, settings.output_dir)
    LOGGER.info("model bundle: %s", bundle_path)
    bundle_config = check_bundle(bundle_path)  # the workers load it; this process never imports torch
    check_prediction_memory(images, bundle_config, settings.mem_gb)
    nprocs = settings.nprocs or os.cpu_count() or 1
    workflow = init_participant_wf(
        images=images, output_dir=settings.output_dir, bids_dir=settings.bids_dir, bundle_path=bundle_path,
        bundle_config=bundle_config,
        device=settings.device, border_mm=settings.border, omp_nthreads=min(settings.omp_nthreads or nprocs, nprocs),
        bids_meta=bids_metadata(settings.bids_dir, images), precision=settings.precision,
    )
    run_id = new_run_id("participant")
    write_run_config(settings.output_dir, run_id, {**settings.to_dict(), "model": bundle_path, "nprocs": nprocs})
    log_file = run_log_path(settings.output_dir, run_id)
    progress = ImageProgress({f"{image_workflow_name(image)}.write_derivatives":
                              image_outputs(image, settings.bids_dir, settings.output_dir) for image in images},
                             settings.output_dir)
    progress.start()
    try:
        run_workflow(workflow, work_dir=settings.work_dir, plugin=settings.plugin, plugin_args=settings.plugin_args,
                     nprocs=nprocs, mem_gb=settings.mem_gb, verbose=settings.verbose, log_file=log_file,
                     on_step=progress.step_event)
    finally:  # also after a failure or Ctrl-C, once some image has its outputs
        if any(image_outputs(image, settings.bids_dir, settings.output_dir).qc_json.is_file() for image in images):
            write_dataset_description(settings.output_dir, settings.bids_dir)
    _print_summary(images, settings.bids_dir, settings.output_dir, log_file)
    return 0


def _print_summary(images, bids_dir, output_dir, log_file) -> None:
    """This run's outcome in three lines: masks and QC flags, the subjects' reports, the log."""
    import json

    from singlestrip_bids.io.derivatives import image_outputs, split_bids_name, subject_report_path

    outputs = [image_outputs(image, bids_dir, output_dir) for image in images]
    subjects = sorted({split_bids_name(Path(image).name)[0]["sub"] for image in images})
    verdicts = [json.loads(entry.qc_json.read_text()).get("qc_pass") for entry in outputs]
    flagged = verdicts.count(False)
    verdict = (f"{flagged} flagged by quality control: check them in the reports" if flagged
               else "all pass QC" if None not in verdicts else "no QC autoencoder in the model")
    print(f"Done: {len(outputs)} brain mask(s) in {output_dir}; {verdict}.")
    shown = ", ".join(str(subject_report_path(output_dir, subject)) for subject in subjects[:3])
    print(f"Reports: {shown}" + (f" and {len(subjects) - 3} more" if len(subjects) > 3 else ""))
    print(f"Log: {log_file}")
