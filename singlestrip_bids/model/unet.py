"""A 3D U-Net for brain probability (SynthStrip-like, sizes from the config)."""

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Architecture; stored in every bundle so that loading needs no flags."""

    levels: int = 5  #: resolution levels; inputs must be multiples of 2**(levels-1)
    base_features: int = 16  #: features at full resolution, doubling per level
    max_features: int = 64  #: cap on the features of any level
    convs_per_level: int = 2
    norm: str = "none"  #: "none", "instance" or "batch"
    activation_slope: float = 0.2  #: LeakyReLU negative slope

    @property
    def multiple(self) -> int:
        return 2 ** (self.levels - 1)

    def to_dict(self) -> dict:
        return asdict(self)


def _block(in_ch: int, out_ch: int, config: UNetConfig) -> nn.Sequential:
    layers = []
    for i in range(config.convs_per_level):
        layers.append(nn.Conv3d(in_ch if i == 0 else out_ch, out_ch, 3, padding=1))
        if config.norm == "instance":
            layers.append(nn.InstanceNorm3d(out_ch, affine=True))
        elif config.norm == "batch":
            layers.append(nn.BatchNorm3d(out_ch))
        layers.append(nn.LeakyReLU(config.activation_slope))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """(B, ``in_channels``, X, Y, Z) (the normalised image first) → (B, 1, X, Y, Z) brain logits.

    Max-pool down, trilinear upsampling + skip concatenation up; sizes must be multiples of
    ``config.multiple``.
    """

    def __init__(self, config: UNetConfig = UNetConfig(), in_channels: int = 1):
        super().__init__()
        self.config = config
        widths = [min(config.base_features * 2**i, config.max_features) for i in range(config.levels)]
        self.down = nn.ModuleList()
        in_ch = in_channels
        for width in widths:
            self.down.append(_block(in_ch, width, config))
            in_ch = width
        self.up = nn.ModuleList(
            _block(widths[i + 1] + widths[i], widths[i], config) for i in reversed(range(config.levels - 1))
        )
        self.head = nn.Conv3d(widths[0], 1, 1)
        self.pool = nn.MaxPool3d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = nn.functional.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)
