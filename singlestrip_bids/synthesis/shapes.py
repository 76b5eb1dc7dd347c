"""Brain-like label maps drawn from nothing: the purely synthetic training source (PUMBA mode).

A :class:`SyntheticHead` is a deterministic recipe — sizes in working-grid voxels, seeds for its
smooth random fields — that renders a (labels, brain mask) pair with no real image read: a brain
(a deformed ellipsoid, optionally joined by a second lobe, with a folded, noise-perturbed
surface and sub-classes like cortex, white matter, deep nuclei, ventricles, sulcal fluid and
lesions) inside shells of fluid, bone and scalp of random thickness and completeness, muscle on
some sides, and random structures outside (eye-like spheres, a neck, air pockets, clutter).
:class:`RandomSyntheticHead` draws one from a seeded generator. The synthesis stream
(``synthesis.generator.Synthesizer``) then deforms, crops, slices and colours it like any class
map, so every class gets a random intensity.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from singlestrip_bids.transforms.ranges import as_range, draw_seed
from singlestrip_bids.transforms.sampling import identity_grid, smooth_field
from singlestrip_bids.transforms.spatial import rotation_matrix

#: label numbers; the brain mask is exactly the labels from :data:`CORTEX` up
AIR, CLUTTER, FLUID, BONE, MARROW, SCALP, MUSCLE, EYE, NECK = range(9)
CORTEX, WHITE, DEEP, VENTRICLE, SULCUS, LESION, LOBE = range(9, 16)
N_CLASSES = 16


@dataclass(frozen=True)
class SyntheticHead:
    """One synthetic head on a cubic grid of ``grid`` voxels; lengths in voxels, angles in degrees."""

    grid: int = 128
    radius: float = 28.0  #: the brain's mean semi-axis
    elongation: tuple = (1.0, 1.0, 1.0)  #: semi-axes = radius × elongation
    rotation_deg: tuple = (0.0, 0.0, 0.0)
    centre_offset: tuple = (0.0, 0.0, 0.0)
    shape_noise: float = 0.1  #: low-frequency surface displacement, × radius
    fold_amplitude: float = 1.5  #: high-frequency folding of the surface
    fold_spacing: float = 4.0
    lobe: float = 0.0  #: second lobe's radius, × radius (0: none)
    lobe_direction: tuple = (0.0, 0.0, -1.0)
    cortex_thickness: float = 2.0
    gyral_depth: float = 0.0  #: how deep the cortex folds into the white matter
    sulcus_fraction: float = 0.2  #: share of the cortex band that is fluid
    ventricle_radius: float = 0.2  #: × radius (0: none)
    deep_nuclei: int = 2
    lesions: int = 0
    shells: tuple = (1.5, 3.0, 1.0, 3.0)  #: thickness of fluid, bone, marrow, scalp
    shell_variation: float = 0.4  #: relative thickness modulation by a smooth field
    bone_gap: float = 0.0  #: share of the bone shell missing
    muscle: float = 0.0  #: muscle thickness where present
    muscle_cover: float = 0.5  #: share of the surface with muscle
    neck: float = 0.0  #: neck radius, × radius (0: none)
    body: float = 0.0  #: size of a textured tissue mass beside the brain (face, neck, a mother's abdomen), × radius
    body_direction: tuple = (0.0, 0.0, -1.0)
    body_classes: int = 3  #: tissue classes in its texture
    eyes: float = 0.0  #: eye radius, × radius (0: none)
    air_pockets: int = 0
    clutter: int = 0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "SyntheticHead":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def __call__(self, device="cpu"):
        """``(labels uint8 (G, G, G), mask bool (G, G, G))`` as torch tensors on ``device``."""
        device = torch.device(device)
        seeds = iter(np.random.default_rng(self.seed).integers(0, 2**31 - 1, 64).tolist())
        shape = (self.grid,) * 3
        points = identity_grid(shape, device)[0]  # (G, G, G, 3) voxel indices
        centre = torch.tensor([(self.grid - 1) / 2 + o for o in self.centre_offset], device=device)
        rotation = torch.tensor(rotation_matrix(self.rotation_deg), dtype=torch.float32, device=device)
        local = (points - centre) @ rotation  # brain-aligned coordinates

        def field(std, spacing):
            coarse = tuple(max(2, math.ceil(self.grid / spacing) + 1) for _ in range(3))
            return smooth_field(next(seeds), std, 1, coarse, shape, device)[0, 0]

        def ellipsoid(at, semi_axes):
            """Approximate signed distance (voxels, < 0 inside) to an ellipsoid in brain coordinates."""
            semi = torch.tensor(semi_axes, dtype=torch.float32, device=device)
            rho = ((local - torch.tensor(at, dtype=torch.float32, device=device)) / semi).norm(dim=-1)
            return (rho - 1) * semi.mean()

        semi = [self.radius * e for e in self.elongation]
        level = ellipsoid((0.0, 0.0, 0.0), semi) + field(self.shape_noise * self.radius, self.radius / 1.5)
        lobe_at = tuple((_unit(self.lobe_direction) * np.asarray(semi) * 0.8).tolist())
        if self.lobe > 0:
            level = torch.minimum(level, ellipsoid(lobe_at, [self.lobe * self.radius] * 3))
        folds = field(self.fold_amplitude, self.fold_spacing)
        level = level + folds
        brain = level < 0
        depth = -level

        labels = self._outside(level, local, field, seeds, centre, rotation)
        # gyri: the cortex reaches into the white matter by up to ``gyral_depth`` where a field is high
        gyri = self.gyral_depth * field(1.0, 1.5 * self.fold_spacing).clamp(min=0)
        cortex = self.cortex_thickness * (1 + 0.5 * field(1.0, self.fold_spacing)).clamp(min=0.3) + gyri
        inner = torch.where(depth > cortex, WHITE, CORTEX)
        sulci = (depth < cortex) & (field(1.0, self.fold_spacing) > _quantile_z(self.sulcus_fraction))
        inner = torch.where(sulci, SULCUS, inner)
        rng = np.random.default_rng(next(seeds))
        if self.lobe > 0:
            in_lobe = ellipsoid(lobe_at, [self.lobe * self.radius] * 3) < 0
            inner = torch.where(in_lobe & (inner == WHITE), LOBE, inner)
        to_grid = (centre, rotation)
        for _ in range(self.deep_nuclei):
            at = rng.uniform(-0.35, 0.35, 3) * semi
            _paint_ball(inner, to_grid, at, self.radius * rng.uniform(0.08, 0.25), DEEP)
        if self.ventricle_radius > 0:
            for side in (-1, 1):
                at = (side * 0.15 * semi[0], 0.0, 0.05 * semi[2])
                axes = [self.ventricle_radius * self.radius * f for f in (0.4, 1.2, 0.6)]
                inner = torch.where(ellipsoid(at, axes) + field(1.0, 8.0) < 0, VENTRICLE, inner)
        for _ in range(self.lesions):
            at = rng.uniform(-0.6, 0.6, 3) * semi
            _paint_ball(inner, to_grid, at, rng.uniform(1.0, 3.5), LESION, only=WHITE)
        labels = torch.where(brain, inner.to(torch.uint8), labels)
        return labels, brain

    def _outside(self, level, local, field, seeds, centre, rotation):
        """Labels outside the brain: shells, muscle, neck, eyes, air pockets and clutter."""
        shape, device = level.shape, level.device
        variation = 1 + self.shell_variation * field(1.0, 10.0).clamp(-1.5, 1.5)
        fluid, bone, marrow, scalp = self.shells
        bone_present = field(1.0, 12.0) > _quantile_z(1 - self.bone_gap)
        bands = torch.full(shape, AIR, dtype=torch.uint8, device=device)
        head = fluid + bone + marrow + scalp
        bands = torch.where(level < head * variation, SCALP, bands)
        bands = torch.where((level < (fluid + bone + marrow) * variation) & bone_present, BONE, bands)
        diploe = (level >= (fluid + bone / 2) * variation) & (level < (fluid + bone / 2 + marrow) * variation)
        bands = torch.where(diploe & bone_present, MARROW, bands)
        bands = torch.where(level < fluid * variation, FLUID, bands)
        if self.muscle > 0:
            cover = field(1.0, 16.0) > _quantile_z(1 - self.muscle_cover)
            bands = torch.where((level >= head * variation) & (level < (head + self.muscle) * variation) & cover,
                                MUSCLE, bands)
        labels = bands
        rng = np.random.default_rng(next(seeds))
        if self.neck > 0:  # a cylinder from the brain's base along its −z axis
            radial = local[..., :2].norm(dim=-1)
            along = -local[..., 2]
            neck = (radial < self.neck * self.radius * (1 + 0.15 * field(1.0, 12.0))) & (along > 0)
            labels = torch.where(neck & (labels == AIR), NECK, labels)
        if self.body > 0:
            labels = self._body(labels, local, field, rng)
        outside = level > 0
        if self.eyes > 0:
            for side in (-1, 1):
                at = (side * 0.35 * self.radius, 1.05 * self.radius, -0.2 * self.radius)
                _paint_ball(labels, (centre, rotation), at, self.eyes * self.radius, EYE, where=outside)
        far = 2.2 * self.radius
        for count, kind in ((self.air_pockets, AIR), (self.clutter, None)):
            for _ in range(count):
                value = kind if kind is not None else int(rng.choice([CLUTTER, FLUID, MUSCLE, EYE, NECK, SCALP]))
                _paint_ball(labels, (centre, rotation), rng.uniform(-far, far, 3),
                            float(rng.uniform(0.05, 0.3) * self.radius), value, where=outside)
        return labels

    def _body(self, labels, local, field, rng):
        """The air of ``labels`` inside a deformed ellipsoid beside the brain filled with a texture
        of ``body_classes`` tissue classes (the argmax of smooth fields): the brain is then not the
        centre of the head's tissue, as in real heads and fetal scans."""
        device = labels.device
        size = self.body * self.radius
        at = torch.tensor(_unit(self.body_direction) * (self.radius + 0.6 * size), dtype=torch.float32, device=device)
        semi = torch.tensor(rng.uniform(0.7, 1.3, 3) * size, dtype=torch.float32, device=device)
        inside = ((local - at) / semi).norm(dim=-1) + field(0.15, 12.0) < 1
        kinds = torch.tensor(rng.choice([CLUTTER, FLUID, BONE, MARROW, SCALP, MUSCLE, EYE, NECK], self.body_classes,
                                        replace=False), dtype=torch.uint8, device=device)
        spacing = float(rng.uniform(3.0, 10.0))
        texture = kinds[torch.stack([field(1.0, spacing) for _ in range(self.body_classes)]).argmax(0)]
        return torch.where(inside & (labels == AIR), texture, labels)


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=float)
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


def _paint_ball(labels, to_grid, at, radius: float, value: int, *, only=None, where=None):
    """Set ``labels`` (G, G, G, in place) to ``value`` inside a ball of ``radius`` voxels centred at
    ``at`` (brain coordinates; ``to_grid`` = (centre, rotation)), only over label ``only`` or where
    ``where`` holds; works on the ball's bounding box alone."""
    centre, rotation = to_grid
    point = centre + rotation @ torch.as_tensor(np.asarray(at), dtype=torch.float32, device=centre.device)
    low = [max(0, int(math.floor(p - radius))) for p in point.tolist()]
    high = [min(s, int(math.ceil(p + radius)) + 1) for p, s in zip(point.tolist(), labels.shape)]
    if any(h <= lo for lo, h in zip(low, high)):
        return
    box = tuple(slice(lo, h) for lo, h in zip(low, high))
    axes = [torch.arange(lo, h, dtype=torch.float32, device=centre.device) for lo, h in zip(low, high)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    ball = (grid - point).norm(dim=-1) < radius
    if only is not None:
        ball &= labels[box] == only
    if where is not None:
        ball &= where[box]
    labels[box][ball] = value


def _quantile_z(fraction: float) -> float:
    """The standard-normal z above which a ``fraction`` of values lie (a field's std is ~1)."""
    fraction = min(max(fraction, 1e-6), 1 - 1e-6)
    return float(math.sqrt(2) * _erfinv(1 - 2 * fraction))


def _erfinv(y: float) -> float:
    return float(torch.erfinv(torch.tensor(y, dtype=torch.float64)))


@dataclass(frozen=True)
class RandomSyntheticHead:
    """Ranges of :class:`SyntheticHead`; a brain of ``radius`` voxels is drawn log-uniformly, so that
    at a 3 mm grid the brains span a fetus (~60 mm) to an adult (~200 mm)."""

    grid: int = 128
    radius: tuple = (12.0, 34.0)
    elongation: tuple = (0.75, 1.3)
    shape_noise: tuple = (0.0, 0.15)
    fold_amplitude: tuple = (0.0, 2.5)
    fold_spacing: tuple = (2.5, 6.0)
    lobe_probability: float = 0.6
    lobe: tuple = (0.3, 0.6)
    cortex_thickness: tuple = (1.0, 3.0)
    gyral_depth: tuple = (0.0, 8.0)
    sulcus_fraction: tuple = (0.0, 0.4)
    ventricle_probability: float = 0.7
    ventricle_radius: tuple = (0.1, 0.3)
    deep_nuclei: tuple = (0, 4)
    lesions: tuple = (0, 8)
    fluid: tuple = (0.0, 4.0)
    bone: tuple = (0.5, 5.0)
    marrow: tuple = (0.0, 2.0)
    scalp: tuple = (0.5, 6.0)
    shell_variation: tuple = (0.0, 0.6)
    bone_gap: tuple = (0.0, 0.3)
    muscle_probability: float = 0.5
    muscle: tuple = (2.0, 12.0)
    muscle_cover: tuple = (0.2, 0.8)
    neck_probability: float = 0.6
    neck: tuple = (0.4, 0.8)
    body_probability: float = 0.8
    body: tuple = (0.7, 1.6)
    body_classes: tuple = (2, 5)
    eyes_probability: float = 0.5
    eyes: tuple = (0.1, 0.2)
    air_pockets: tuple = (0, 4)
    clutter: tuple = (0, 6)

    n_classes = N_CLASSES

    def to_dict(self) -> dict:
        return asdict(self)

    def __call__(self, rng: np.random.Generator) -> SyntheticHead:
        def uniform(name):
            return float(rng.uniform(*as_range(getattr(self, name))))

        def count(name):
            low, high = getattr(self, name)
            return int(rng.integers(low, high + 1))

        def maybe(probability, name):
            return uniform(name) if rng.uniform() < probability else 0.0

        low, high = np.log(as_range(self.radius))
        radius = float(np.exp(rng.uniform(low, high)))
        elongation = rng.uniform(*as_range(self.elongation), 3)
        elongation = elongation / np.exp(np.log(elongation).mean())
        direction = rng.normal(size=3) * (0.5, 0.5, 1.0) - (0, 0, 1.0)
        body_direction = rng.normal(size=3) * (0.4, 0.6, 0.4) - (0, -0.5, 1.0)  # below, towards the face
        return SyntheticHead(
            grid=self.grid, radius=radius, elongation=tuple(elongation.tolist()),
            rotation_deg=tuple(rng.uniform(-180, 180, 3).tolist()),
            centre_offset=tuple(rng.uniform(-4, 4, 3).tolist()),
            shape_noise=uniform("shape_noise"), fold_amplitude=uniform("fold_amplitude"),
            fold_spacing=uniform("fold_spacing"),
            lobe=maybe(self.lobe_probability, "lobe"), lobe_direction=tuple(direction.tolist()),
            cortex_thickness=uniform("cortex_thickness"), gyral_depth=uniform("gyral_depth"),
            sulcus_fraction=uniform("sulcus_fraction"),
            ventricle_radius=maybe(self.ventricle_probability, "ventricle_radius"),
            deep_nuclei=count("deep_nuclei"), lesions=count("lesions"),
            shells=(uniform("fluid"), uniform("bone"), uniform("marrow"), uniform("scalp")),
            shell_variation=uniform("shell_variation"), bone_gap=uniform("bone_gap"),
            muscle=maybe(self.muscle_probability, "muscle"), muscle_cover=uniform("muscle_cover"),
            neck=maybe(self.neck_probability, "neck"), body=maybe(self.body_probability, "body"),
            body_direction=tuple(body_direction.tolist()), body_classes=count("body_classes"),
            eyes=maybe(self.eyes_probability, "eyes"),
            air_pockets=count("air_pockets"), clutter=count("clutter"), seed=draw_seed(rng),
        )

