"""Small synthetic volumes for the transform and synthesis tests."""

import numpy as np


def sphere(shape=(48, 48, 48), radius=12.0, centre=None):
    centre = np.array(shape) / 2 - 0.5 if centre is None else np.asarray(centre)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    return np.linalg.norm(grid - centre, axis=-1) <= radius


def checkerboard_labels(shape=(48, 48, 48)):
    board = ((np.indices(shape) // 6).sum(0) % 2).astype(np.uint8)
    return board + 2 * sphere(shape).astype(np.uint8)
