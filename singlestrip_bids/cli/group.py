"""Group level driver: parsed arguments → the labeled example, the images, ``training.group``."""

import logging
from dataclasses import replace

from singlestrip_bids.errors import UserError

LOGGER = logging.getLogger("singlestrip_bids")


def run_group(settings) -> int:
    """Train the one-shot model on the labeled example and self-train it on the other images; returns 0.

    The labeled example is ``--labeled-subject``'s image of the first ``--suffix`` with its mask from
    ``bids_dir/derivatives`` or ``--labeled-mask``.
    """
    from singlestrip_bids.cli.participant import select_images
    from singlestrip_bids.io.bids import (
        check_labeled_mask,
        collect_images,
        find_labeled_mask,
        image_of_mask,
    )
    from singlestrip_bids.io.derivatives import write_dataset_description
    from singlestrip_bids.io.nifti import load_image
    from singlestrip_bids.io.outputs import new_run_id, run_log_path, write_run_config
    from singlestrip_bids.training.group import (
        SSL_LEARNING_RATE,
        SSL_STEPS,
        GroupSettings,
        one_shot_config,
        run_group_level,
    )

    if not settings.labeled_subject:
        raise UserError("the group level needs --labeled-subject (the subject whose brain mask is known)")
    if settings.ssl_ranking == "estimator" and not settings.qc_estimator_steps:
        raise UserError("--ssl-ranking estimator needs the Dice estimator: give --qc-estimator-steps N")
    filters = settings.bids_filters
    images = select_images(settings)
    suffix = settings.suffix[0]
    if settings.labeled_mask is not None:
        labeled = collect_images(settings.bids_dir, participant_labels=[settings.labeled_subject],
                                 session_labels=settings.session_label, suffixes=[suffix], bids_filters=filters)
        labeled_image, labeled_mask = image_of_mask(labeled, settings.labeled_mask), settings.labeled_mask
    else:
        labeled_image, labeled_mask = find_labeled_mask(settings.bids_dir, settings.labeled_subject, suffix, filters)
    check_labeled_mask(load_image(labeled_image), load_image(labeled_mask))
    training = one_shot_config(settings.init, seed=settings.random_seed, steps=settings.train_steps,
                               real_image_probability=settings.real_image_probability)
    if settings.batch_size is not None:
        training = replace(training, batch_size=settings.batch_size)
    voxel_size = None if settings.working_voxel_size == "auto" else settings.working_voxel_size
    group_settings = GroupSettings(
        training=training, qc_ae=settings.qc_ae, top_k=settings.top_k, rounds=settings.ssl_rounds,
        ranking=settings.ssl_ranking, from_scratch=settings.from_scratch, device=settings.device,
        resume=settings.resume, working_voxel_size=voxel_size, init=str(settings.init),
        ssl_steps=settings.ssl_steps or SSL_STEPS, ssl_learning_rate=settings.ssl_learning_rate or SSL_LEARNING_RATE)
    if settings.qc_ae_steps is not None:
        group_settings = replace(group_settings, ae_steps=settings.qc_ae_steps)
    if settings.qc_estimator_steps is not None:
        group_settings = replace(group_settings, estimator_steps=settings.qc_estimator_steps)
    LOGGER.info("labeled example: %s with %s; %d image(s) selected", labeled_image.name, labeled_mask.name,
                len(images))
    threads = settings.omp_nthreads or settings.nprocs
    if threads:
        from singlestrip_bids.model.device import set_thread_count

        set_thread_count(threads)
    run_id = new_run_id("group")
    write_run_config(settings.output_dir, run_id,
                     {**settings.to_dict(), "labeled_image": labeled_image, "labeled_mask": labeled_mask})
    log_file = run_log_path(settings.output_dir, run_id)
    handler = logging.FileHandler(log_file)  # every record, each training step's progress included
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    LOGGER.addHandler(handler)
    try:
        final = run_group_level(labeled_image, labeled_mask, images, settings.output_dir, settings.work_dir,
                                group_settings)
    finally:
        LOGGER.removeHandler(handler)
        handler.close()
    write_dataset_description(settings.output_dir, settings.bids_dir)
    print(f"Final model: {final}")
    print(f"Group tables and reports: {settings.output_dir}/group_*.tsv, group_*.html")
    print(f"Log: {log_file}")
    return 0
