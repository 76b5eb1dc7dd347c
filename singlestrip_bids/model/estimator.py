"""The Dice estimator: a U-Net that reads an image and a candidate mask and outlines the brain it
sees; the candidate's estimated Dice is its Dice against that outline.

Input (B, 2, X, Y, Z) on the working grid, framed as the U-Net's input: the normalised image and
the 0/1 candidate mask. Output (B, 1, X, Y, Z): logits of the true brain mask. The architecture is
the bundle's U-Net with a second input channel (``config["unet"]``); it starts from that U-Net's
weights with the candidate's weights at zero (:func:`estimator_from_unet`), so that before training
it estimates a mask's Dice by its agreement with the U-Net, and training on candidates with known
failures (``training.estimator``) teaches it what the candidate tells about the truth.
"""

KIND = "dense_dice_estimator"
QC_THRESHOLD = 0.9  #: a mask passes when its estimated Dice is at least this (docs/qc.md)


def build_estimator(config: dict):
    """An untrained estimator from its JSON-able config (``kind``, ``unet``, ``qc_threshold``); the
    module keeps it as ``.config``. KeyError for a config of another kind."""
    from singlestrip_bids.model.unet import UNet, UNetConfig

    if config.get("kind") != KIND:
        raise KeyError(f"Dice estimator kind {config.get('kind')!r} is not {KIND!r}")
    model = UNet(UNetConfig(**config["unet"]), in_channels=2)
    model.config = dict(config)
    return model


def estimator_from_unet(unet, qc_threshold: float = QC_THRESHOLD):
    """An estimator with ``unet``'s architecture and weights; the candidate channel starts at zero."""
    import torch

    model = build_estimator({"kind": KIND, "unet": unet.config.to_dict(), "qc_threshold": qc_threshold})
    state = unet.state_dict()
    first = "down.0.0.weight"
    widened = torch.zeros_like(model.state_dict()[first])
    widened[:, :1] = state[first]
    model.load_state_dict({**state, first: widened})
    return model


def estimated_dice(logits, candidates):
    """(B,) Dice of ``candidates`` (B, 1, X, Y, Z), 0/1, against the outlines ``logits`` > 0
    (same shape); 1 where both are empty."""
    import torch

    outline = (logits > 0).float()
    dims = tuple(range(1, logits.ndim))
    overlap = (outline * candidates).sum(dims)
    total = outline.sum(dims) + candidates.sum(dims)
    return torch.where(total > 0, 2 * overlap / total.clamp(min=1), torch.ones_like(total))
