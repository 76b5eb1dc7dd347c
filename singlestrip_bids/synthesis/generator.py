"""The stream of synthetic training pairs drawn from one or more (class map, brain mask) sources."""

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from singlestrip_bids.model.normalize import normalize_intensity
from singlestrip_bids.synthesis.gmm import class_contrast
from singlestrip_bids.transforms.field_of_view import (
    AirClutter,
    FieldOfView,
    RandomAirClutter,
    RandomFieldOfView,
    RandomThickSlices,
    ThickSlices,
)
from singlestrip_bids.transforms.intensity import (
    BiasField,
    ClassIntensities,
    Gamma,
    GaussianBlur,
    GaussianNoise,
    RandomBiasField,
    RandomClassIntensities,
    RandomGamma,
    RandomGaussianBlur,
    RandomGaussianNoise,
)
from singlestrip_bids.transforms.spatial import RandomSpatial, SpatialTransform


@dataclass(frozen=True)
class SynthesisConfig:
    """Every range of the synthesis (METHOD.md §2); sizes in working-grid voxels."""

    #: each axis of a draw's patch is one of these sizes, so the network sees inputs as large and
    #: as framed as the heads it is run on (``(64,)``: always 64³)
    patch_sizes: tuple = (64, 80, 96, 112)
    spatial: RandomSpatial = field(default_factory=RandomSpatial)
    air_clutter: RandomAirClutter = field(default_factory=RandomAirClutter)
    intensity_mean: tuple = (25 / 255, 225 / 255)
    intensity_std: tuple = (5 / 255, 25 / 255)
    background_zero_probability: float = 0.2
    #: share of draws that keep the source image's own GMM contrast instead of random intensities
    source_contrast_probability: float = 0.5
    #: share of draws that show the source's real image (warped, then noise, blur, bias, gamma and
    #: field of view as usual) instead of an image painted from its class map; sources without an
    #: image always paint
    real_image_probability: float = 0.0
    #: voxels on either side of a pseudo-label's brain edge (chessboard distance, after the draw's
    #: warp and field of view) that carry no loss: a pseudo-label's errors lie mostly there, and the
    #: edge is then learned from the true labels only; 0 trusts every voxel
    pseudo_label_band: int = 0
    noise: RandomGaussianNoise = field(default_factory=RandomGaussianNoise)
    blur: RandomGaussianBlur = field(default_factory=RandomGaussianBlur)
    bias: RandomBiasField = field(default_factory=RandomBiasField)
    gamma: RandomGamma = field(default_factory=RandomGamma)
    field_of_view: RandomFieldOfView = field(default_factory=RandomFieldOfView)
    thick_slices: RandomThickSlices = field(default_factory=RandomThickSlices)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "SynthesisConfig":
        nested = {"spatial": RandomSpatial, "air_clutter": RandomAirClutter, "noise": RandomGaussianNoise,
                  "blur": RandomGaussianBlur, "bias": RandomBiasField, "gamma": RandomGamma,
                  "field_of_view": RandomFieldOfView, "thick_slices": RandomThickSlices}
        def plain(value):
            return tuple(value) if isinstance(value, list) else value

        values = dict(values)
        if "patch_shape" in values:  # bundles written before patch sizes were drawn
            values["patch_sizes"] = tuple(sorted(set(values.pop("patch_shape"))))
        kwargs = {k: (nested[k](**{a: plain(b) for a, b in v.items()}) if k in nested else plain(v))
                  for k, v in values.items()}
        return cls(**kwargs)


@dataclass(frozen=True)
class Draw:
    """The parameters of one synthetic pair: replaying them reproduces it exactly."""

    source: int
    patch_shape: tuple
    spatial: SpatialTransform
    intensities: ClassIntensities
    noise: GaussianNoise
    blur: GaussianBlur
    bias: BiasField
    gamma: Gamma
    field_of_view: FieldOfView
    thick_slices: ThickSlices
    air_clutter: AirClutter = AirClutter()  # defaulted last, so that draws logged before them replay
    real_image: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Draw":
        """Rebuild a draw from :meth:`to_dict` output (e.g. read back from a JSON log)."""
        kinds = {"spatial": SpatialTransform, "intensities": ClassIntensities, "noise": GaussianNoise,
                 "blur": GaussianBlur, "bias": BiasField, "gamma": Gamma,
                 "field_of_view": FieldOfView, "thick_slices": ThickSlices, "air_clutter": AirClutter}
        built = {key: kinds[key](**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
                 for key, params in values.items() if key in kinds}
        return cls(source=int(values["source"]), patch_shape=tuple(values["patch_shape"]),
                   real_image=bool(values.get("real_image", False)), **built)


class Synthesizer:
    """Draws (image, mask) training pairs from class maps and brain masks.

    Each source is a ``(labels, mask)`` pair of (X, Y, Z) arrays on the working grid (labels uint8
    from :func:`synthesis.gmm.fit_class_map`), or ``(labels, mask, gmm summary)``: with the summary,
    some draws keep the source's own contrast (``source_contrast_probability``), or ``(labels,
    mask, gmm summary, image)`` with the conformed image (X, Y, Z) itself: some draws then show it
    (``real_image_probability``). Every source is drawn with the same probability. The first
    ``n_labeled`` sources carry true labels, the rest pseudo-labels (None: all true).
    """

    def __init__(self, sources, config: SynthesisConfig = SynthesisConfig(), *, seed: int = 0, device="cpu",
                 n_labeled: int | None = None):
        if not sources:
            raise ValueError("at least one (labels, mask) source is needed")
        self.config = config
        self.n_labeled = len(sources) if n_labeled is None else n_labeled
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        self.labels = [torch.as_tensor(np.asarray(s[0], dtype=np.uint8), device=self.device)[None] for s in sources]
        self.masks = [torch.as_tensor(np.asarray(s[1], dtype=np.float32), device=self.device)[None] for s in sources]
        self.centres = [np.argwhere(np.asarray(s[1]) > 0).mean(axis=0) for s in sources]
        self.contrasts = [class_contrast(s[2]) if len(s) > 2 and s[2] else None for s in sources]
        self.images = [None if len(s) < 4 or s[3] is None else
                       normalize_intensity(torch.as_tensor(np.asarray(s[3], np.float32), device=self.device))[None]
                       for s in sources]
        self.n_classes = max(int(lab.max()) + 1 for lab in self.labels)

    def sample_patch_shape(self) -> tuple:
        """One of ``patch_sizes`` per axis, drawn from the seeded generator (no draw for one size)."""
        sizes = self.config.patch_sizes
        if len(sizes) == 1:
            return (int(sizes[0]),) * 3
        return tuple(int(s) for s in self.rng.choice(sizes, 3))

    def sample(self, patch_shape=None) -> Draw:
        """Draw the parameters of one pair (of ``patch_shape``, else a drawn one) from the seeded generator."""
        c, rng = self.config, self.rng
        source = int(rng.integers(len(self.labels)))
        return Draw(
            source=source,
            patch_shape=tuple(patch_shape) if patch_shape else self.sample_patch_shape(),
            spatial=c.spatial(rng),
            intensities=RandomClassIntensities(self.n_classes, c.intensity_mean, c.intensity_std,
                                                 c.background_zero_probability, self.contrasts[source],
                                                 c.source_contrast_probability)(rng),
            noise=c.noise(rng),
            blur=c.blur(rng),
            bias=c.bias(rng),
            gamma=c.gamma(rng),
            field_of_view=c.field_of_view(rng),
            thick_slices=c.thick_slices(rng),
            air_clutter=c.air_clutter(rng, self.n_classes),
            real_image=self._draw_real_image(source),
        )

    def _draw_real_image(self, source: int) -> bool:
        """Whether a draw of ``source`` shows its real image; no draw where none can (so the streams of
        configurations without real images stay as they were)."""
        p = self.config.real_image_probability
        return bool(p > 0 and self.images[source] is not None and self.rng.random() < p)

    def render(self, draw: Draw):
        """Image (1, X, Y, Z) normalised as the network sees it, and its brain mask (1, X, Y, Z)."""
        return render_pair(draw, self.labels[draw.source], self.masks[draw.source], self.centres[draw.source],
                           self.images[draw.source])

    def batch(self, size: int):
        """``size`` fresh pairs of one drawn shape: images and masks (B, 1, X, Y, Z), and their draws."""
        shape = self.sample_patch_shape()
        draws = [self.sample(shape) for _ in range(size)]
        pairs = [self.render(d) for d in draws]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs]), draws

    def training_batch(self, size: int):
        """``size`` fresh pairs as a trainer takes them: images, masks (B, 1, X, Y, Z) and the voxel
        weights of the loss (:meth:`loss_weights`)."""
        images, masks, draws = self.batch(size)
        return images, masks, self.loss_weights(masks, draws)

    def loss_weights(self, masks, draws):
        """Voxel weights (B, 1, X, Y, Z) of a batch's loss: 0 within ``pseudo_label_band`` voxels of the
        edge of a pseudo-label's mask, 1 elsewhere; None when every voxel counts."""
        band = self.config.pseudo_label_band
        pseudo = [band > 0 and draw.source >= self.n_labeled for draw in draws]
        if not any(pseudo):
            return None
        weights = torch.ones_like(masks)
        rows = [row for row, is_pseudo in enumerate(pseudo) if is_pseudo]
        weights[rows] = 1.0 - edge_band(masks[rows], band)
        return weights


def edge_band(masks: torch.Tensor, width: int) -> torch.Tensor:
    """1 where a voxel of masks (B, 1, X, Y, Z) lies within ``width`` voxels (chessboard distance) of
    the edge between brain (> 0.5) and background, on either side; else 0. Same shape, float."""
    brain = (masks > 0.5).float()
    size = 2 * width + 1
    grown = torch.nn.functional.max_pool3d(brain, size, stride=1, padding=width)
    shrunk = 1.0 - torch.nn.functional.max_pool3d(1.0 - brain, size, stride=1, padding=width)
    return grown - shrunk


def render_pair(draw: Draw, labels: torch.Tensor, mask: torch.Tensor, centre, real_image=None):
    """The pair of ``draw`` from a class map (1, X, Y, Z) uint8 and its brain mask (1, X, Y, Z) float
    whose centre (voxel indices) is ``centre``: image normalised as the network sees it, and mask.
    ``real_image`` (1, X, Y, Z) in [0, 1]: the source's own image, shown where ``draw.real_image``."""
    if draw.real_image:
        labels, mask, image = draw.spatial(labels, mask, draw.patch_shape, centre, image=real_image)
    else:
        labels, mask = draw.spatial(labels, mask, draw.patch_shape, centre)
        labels = draw.air_clutter(labels, mask)
        image = draw.intensities(labels[0])[None]
    image = draw.bias(draw.blur(draw.noise(image)))
    image = draw.gamma(image)
    image = draw.thick_slices(image)
    image = draw.field_of_view(image)
    mask = draw.field_of_view(mask)
    return normalize_intensity(image), mask
