"""The brain-mask autoencoder of AE-QC: its configs and the network.

Architecture (after Galati & Zuluaga): per width in ``channels`` a 4×4 stride-2 convolution and a 3×3
stride-1 convolution, each with BatchNorm, LeakyReLU 0.2 and dropout; a last convolution over the
remaining field of view to a latent vector of ``latent`` channels (the bottleneck that makes it a
shape prior); the decoder mirrors it with transposed convolutions.
"""

# qc_threshold: AE scores below it flag a mask (chosen from benchmarks/qc_eval.py, see docs/qc.md).
DEFAULTS = {
    "2d": {"size": 64, "spacing_mm": 3.0, "channels": [32, 64, 128], "latent": 100, "dropout": 0.1,
           "qc_threshold": 0.92},
    "3d": {"size": 48, "spacing_mm": 4.0, "channels": [16, 32, 64], "latent": 100, "dropout": 0.1,
           "qc_threshold": 0.9},
}


def default_config(kind: str = "2d", working_voxel_size: float = 2.0) -> dict:
    """The JSON-able config of an untrained autoencoder of ``kind`` ("2d" or "3d")."""
    if kind not in DEFAULTS:
        raise ValueError(f"unknown autoencoder kind {kind!r} (use 2d or 3d)")
    return {"kind": kind, "working_voxel_size": float(working_voxel_size), **DEFAULTS[kind]}


def build_autoencoder(config: dict):
    """An untrained autoencoder from its config; the module keeps the config as ``.config``."""
    from torch import nn

    kind = config["kind"]
    if kind not in DEFAULTS:
        raise ValueError(f"unknown autoencoder kind {kind!r} (use 2d or 3d)")
    conv, deconv, norm, drop = {
        "2d": (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.Dropout2d),
        "3d": (nn.Conv3d, nn.ConvTranspose3d, nn.BatchNorm3d, nn.Dropout3d),
    }[kind]
    if config["size"] % 2 ** len(config["channels"]):
        raise ValueError("autoencoder box size must be a multiple of 2**len(channels)")

    def unit(layer, width):
        return [layer, norm(width), nn.LeakyReLU(0.2), drop(config["dropout"])]

    encoder, decoder = [], []
    in_ch = 1
    for width in config["channels"]:
        encoder += unit(conv(in_ch, width, 4, stride=2, padding=1), width)
        encoder += unit(conv(width, width, 3, padding=1), width)
        in_ch = width
    # The latent is a vector: one convolution over the whole remaining field of view.
    bottom = config["size"] // 2 ** len(config["channels"])
    encoder.append(conv(in_ch, config["latent"], bottom))
    decoder += unit(deconv(config["latent"], in_ch, bottom), in_ch)
    for width in config["channels"][::-1][1:]:
        decoder += unit(conv(in_ch, in_ch, 3, padding=1), in_ch)
        decoder += unit(deconv(in_ch, width, 4, stride=2, padding=1), width)
        in_ch = width
    decoder += unit(conv(in_ch, in_ch, 3, padding=1), in_ch)
    decoder += [deconv(in_ch, 1, 4, stride=2, padding=1), nn.Sigmoid()]
    model = nn.Sequential(nn.Sequential(*encoder), nn.Sequential(*decoder))
    model.config = dict(config)
    return model
