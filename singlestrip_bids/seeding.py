"""The one place the global random generators are seeded (every run, every training phase)."""


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators with ``seed``.

    Augmentations draw from their own ``numpy.random.Generator`` (``transforms``); this covers what
    draws from the global ones: weight initialisation and library internals.
    """
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
