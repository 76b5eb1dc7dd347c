"""Non-anatomical class maps: Gaussian mixtures on intensities inside and outside the brain."""

import numpy as np


def _fit_mixture(values: np.ndarray, n_components: int, seed: int, max_samples: int):
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    sample = values if values.size <= max_samples else rng.choice(values, max_samples, replace=False)
    n_components = max(1, min(n_components, np.unique(sample).size))
    gmm = GaussianMixture(n_components, covariance_type="full", random_state=seed, max_iter=200)
    gmm.fit(sample[:, None].astype(np.float64))
    order = np.argsort(gmm.means_[:, 0])
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    labels = rank[gmm.predict(values[:, None].astype(np.float64))]
    summary = {
        "means": gmm.means_[order, 0].tolist(),
        "variances": gmm.covariances_[order, 0, 0].tolist(),
        "weights": gmm.weights_[order].tolist(),
    }
    return labels, summary


def fit_class_map(image, mask, *, n_brain: int = 10, n_head: int = 6, seed: int = 0,
                  max_samples: int = 200_000):
    """Bin the voxels of ``image`` into ``n_head + n_brain`` intensity classes.

    Parameters
    ----------
    image : float array (X, Y, Z)
    mask : bool array (X, Y, Z), the brain
    Returns
    -------
    labels : uint8 array (X, Y, Z); 0 … n_head−1 outside the brain (0 = darkest, usually air),
        n_head … n_head+n_brain−1 inside, each range ordered by mean intensity
    summary : dict with each mixture's means, variances and weights (JSON-able, for provenance)
    """
    image = np.asarray(image, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if not mask.any() or mask.all():
        raise ValueError("the brain mask must be neither empty nor the whole image")
    labels = np.zeros(image.shape, dtype=np.uint8)
    outside, out_summary = _fit_mixture(image[~mask], n_head, seed, max_samples)
    inside, in_summary = _fit_mixture(image[mask], n_brain, seed + 1, max_samples)
    labels[~mask] = outside
    labels[mask] = inside + n_head
    summary = {"n_head": n_head, "n_brain": n_brain, "seed": seed, "head": out_summary, "brain": in_summary}
    return labels, summary


def class_contrast(summary: dict, top: float = 0.9) -> tuple:
    """The source image's own contrast as (means, SDs) per class of :func:`fit_class_map`'s labels.

    Intensities are scaled so that the brightest class mean is ``top`` (the synthesis works on a
    [0, 1] scale); a class the mixture did not use keeps mean and SD 0.
    """
    n_classes = summary["n_head"] + summary["n_brain"]
    means, stds = np.zeros(n_classes), np.zeros(n_classes)
    for offset, part in ((0, summary["head"]), (summary["n_head"], summary["brain"])):
        count = len(part["means"])
        means[offset:offset + count] = part["means"]
        stds[offset:offset + count] = np.sqrt(part["variances"])
    scale = top / max(float(means.max()), 1e-6)
    return tuple((means * scale).tolist()), tuple((stds * scale).tolist())
