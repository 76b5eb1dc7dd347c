"""The one range parser of every random transform, and the seeds that make draws replayable."""

from dataclasses import asdict

import numpy as np


def as_range(value, around: float = 0.0) -> tuple:
    """``(a, b)`` stays; a non-negative scalar ``d`` becomes ``(around − d, around + d)``.

    ValueError for ``a > b``, a negative scalar or anything else.
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] > value[1]:
            raise ValueError(f"a range must be (low, high) with low <= high, got {value!r}")
        return float(value[0]), float(value[1])
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or value < 0:
        raise ValueError(f"a range must be (low, high) or a non-negative scalar, got {value!r}")
    return around - float(value), around + float(value)


def uniform3(rng: np.random.Generator, value, around: float = 0.0) -> tuple:
    """Three independent uniform draws in ``as_range(value, around)``."""
    low, high = as_range(value, around)
    return tuple(float(v) for v in rng.uniform(low, high, 3))


def draw_seed(rng: np.random.Generator) -> int:
    """A seed for a dense random field, drawn from ``rng``."""
    return int(rng.integers(0, 2**31 - 1))


def torch_generator(seed: int, device):
    """A torch generator on ``device`` seeded with ``seed``."""
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


class Params:
    """Mixin of the deterministic transforms of QC: ``params()`` logs a draw."""

    def params(self) -> dict:
        """``{class name: parameters}``, JSON-able (tuples as lists)."""
        return {type(self).__name__: {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}}
