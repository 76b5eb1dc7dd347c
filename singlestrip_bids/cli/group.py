"""Group level driver: parsed arguments → the labeled example, the images, ``training.group``."""

import logging
from dataclasses import replace

from singlestrip_bids.errors import UserError

LOGGER = logging.getLogger("singlestrip_bids")


def run_group(args) -> int:
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
        load_bids_filters,
    )
    from singlestrip_bids.io.derivatives import write_dataset_description
    from singlestrip_bids.io.nifti import load_image
    from singlestrip_bids.io.outputs import write_run_config
    from singlestrip_bids.training.group import (
        SSL_LEARNING_RATE,
        SSL_STEPS,
        GroupSettings,
        one_shot_steps,
        run_group_level,
    )
    from singlestrip_bids.training.sl1 import TrainingConfig

    if not args.labeled_subject:
        raise UserError("the group level needs --labeled-subject (the subject whose brain mask is known)")
    filters = load_bids_filters(args.bids_filter_file) if args.bids_filter_file else None
    images = select_images(args)
    suffix = args.suffix[0]
    if args.labeled_mask is not None:
        labeled = collect_images(args.bids_dir, participant_labels=[args.labeled_subject],
                                 session_labels=args.session_label, suffixes=[suffix], bids_filters=filters)
        labeled_image, labeled_mask = image_of_mask(labeled, args.labeled_mask), args.labeled_mask
    else:
        labeled_image, labeled_mask = find_labeled_mask(args.bids_dir, args.labeled_subject, suffix, filters)
    check_labeled_mask(load_image(labeled_image), load_image(labeled_mask))
    training = TrainingConfig(seed=args.random_seed)
    overrides = {"steps": args.train_steps or one_shot_steps(args.init), "batch_size": args.batch_size}
    training = replace(training, **{key: value for key, value in overrides.items() if value is not None})
    voxel_size = None if args.working_voxel_size == "auto" else args.working_voxel_size
    settings = GroupSettings(training=training, qc_ae=args.qc_ae, top_k=args.top_k, rounds=args.ssl_rounds,
                             ranking=args.ssl_ranking, from_scratch=args.from_scratch, device=args.device,
                             resume=args.resume, working_voxel_size=voxel_size, init=str(args.init),
                             ssl_steps=args.ssl_steps or SSL_STEPS,
                             ssl_learning_rate=args.ssl_learning_rate or SSL_LEARNING_RATE)
    if args.qc_ae_steps is not None:
        settings = replace(settings, ae_steps=args.qc_ae_steps)
    LOGGER.info("labeled example: %s with %s; %d image(s) selected", labeled_image.name, labeled_mask.name,
                len(images))
    threads = args.omp_nthreads or args.nprocs
    if threads:
        import torch

        torch.set_num_threads(threads)
    write_dataset_description(args.output_dir, args.bids_dir)
    write_run_config(args.output_dir, "group", {**vars(args), "labeled_image": labeled_image,
                                                "labeled_mask": labeled_mask})
    final = run_group_level(labeled_image, labeled_mask, images, args.output_dir, args.work_dir, settings)
    print(f"Final model: {final}")
    print(f"Group tables and reports: {args.output_dir}/group_*.tsv, group_*.html")
    return 0
