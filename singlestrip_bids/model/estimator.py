"""The Dice estimator: a small 3D CNN that reads an image and a candidate mask and says how good the mask is.

Input (B, 2, X, Y, Z) on the working grid: the normalised image and the 0/1 candidate mask, framed
as the U-Net's input (any size; at least 2**len(features) voxels per axis). Per width in
``features``: a stride-2 3×3×3 convolution with group norm and LeakyReLU 0.2; global average and
max pooling; one linear layer to a logit. sigmoid(logit) is the estimated Dice of the mask against
the (unknown) true brain mask. About 0.1 s per training step of two 112×112×64 inputs on two CPU
cores; a second convolution per width cost twice as much and was not tried further.
"""

DEFAULT_CONFIG = {"kind": "dice_estimator", "features": [8, 16, 32, 64, 64], "qc_threshold": 0.9}


def build_estimator(config: dict = DEFAULT_CONFIG):
    """An untrained estimator from its JSON-able config; the module keeps it as ``.config``."""
    import torch
    from torch import nn

    class DiceEstimator(nn.Module):
        def __init__(self):
            super().__init__()
            layers, in_ch = [], 2
            for width in config["features"]:
                # Group norm (4 channels a group): still defined where a small input leaves one voxel.
                layers += [nn.Conv3d(in_ch, width, 3, stride=2, padding=1),
                           nn.GroupNorm(max(1, width // 4), width), nn.LeakyReLU(0.2)]
                in_ch = width
            self.features = nn.Sequential(*layers)
            self.head = nn.Linear(2 * in_ch, 1)

        def forward(self, x):
            """(B, 2, X, Y, Z) → (B,) logits of the estimated Dice."""
            h = self.features(x)
            pooled = torch.cat([h.mean(dim=(2, 3, 4)), h.amax(dim=(2, 3, 4))], dim=1)
            return self.head(pooled)[:, 0]

    model = DiceEstimator()
    model.config = dict(config)
    return model
