"""The group level's QC networks: the autoencoder on the labeled mask, and the Dice estimator after SL-1.

Stages of ``training.group`` over its ``GroupRun``.
"""

import logging
from dataclasses import dataclass

from singlestrip_bids.training.self_training import bids_name

LOG = logging.getLogger(__name__)


@dataclass
class QCNetworks:
    """The QC networks every bundle of the run carries: the autoencoder and, once trained, the Dice estimator."""

    autoencoder: object
    estimator: object = None


def train_qc_network(run) -> QCNetworks:
    """The QC autoencoder, trained on the labeled mask on the working grid of ``run`` (the
    ``training.group.GroupRun``); the estimator follows SL-1."""
    from singlestrip_bids.io.conform import conform_mask
    from singlestrip_bids.io.nifti import load_image
    from singlestrip_bids.training.autoencoder import train_autoencoder

    settings = run.settings
    LOG.info("training the %s QC autoencoder on the labeled mask (%d steps)", settings.qc_ae, settings.ae_steps)
    mask = conform_mask(load_image(run.labeled_mask), run.config.voxel_size, run.config.unet.multiple)
    run.losses["qc_ae"] = []
    qc_ae, _ = train_autoencoder(mask, kind=settings.qc_ae, steps=settings.ae_steps, seed=run.seed,
                                 device=run.device, voxel_size=run.config.voxel_size,
                                 architecture=run.ae_architecture, augmentation=run.ae_augmentation,
                                 on_step=lambda step, loss: run.losses["qc_ae"].append(round(loss, 5)))
    return QCNetworks(qc_ae)


def train_dice_estimator(run, one_shot, qc: QCNetworks) -> QCNetworks:
    """The Dice estimator, trained on synthesis from the labeled example with the thresholded
    predictions of SL-1 (``one_shot``, the ``training.group.OneShot``) among its candidates, and
    added to the SL-1 bundle (``settings.estimator_steps`` 0: none)."""
    from dataclasses import replace

    from singlestrip_bids.model.bundle import add_dice_estimator, load_bundle
    from singlestrip_bids.training.estimator import train_estimator

    steps = run.settings.estimator_steps
    if not steps:
        return qc
    LOG.info("training the Dice estimator on synthesis from %s (%d steps)", bids_name(run.labeled_image), steps)
    estimator, run.losses["dice_estimator"] = train_estimator(
        [one_shot.source], run.config.synthesis, voxel_mm=run.config.voxel_size, unet=load_bundle(one_shot.bundle).unet,
        steps=steps, seed=run.seed, device=run.device, precision=run.config.precision)
    add_dice_estimator(one_shot.bundle, estimator)
    return replace(qc, estimator=estimator)
