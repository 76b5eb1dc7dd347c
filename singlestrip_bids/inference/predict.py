"""Brain probability on the working grid, with the model loaded once per process."""

from functools import lru_cache
from pathlib import Path

import numpy as np


class Predictor:
    """Wraps a bundle's U-Net on a device and precision; thread count follows torch's settings.

    ``precision`` (``model.device.PRECISIONS``): ``auto`` runs the forward pass in bf16 autocast on
    CUDA and on CPUs that compute bf16 natively, fp32 elsewhere; ``fp32`` and ``bf16`` force it.
    """

    def __init__(self, bundle, device="auto", precision="auto"):
        from singlestrip_bids.model.device import autocast_dtype, resolve_device

        self.bundle = bundle
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.autocast = autocast_dtype(self.device, precision)
        self.unet = bundle.unet.to(self.device).eval()

    def predict_probability(self, data: np.ndarray) -> np.ndarray:
        """P(brain) for a conformed volume (X, Y, Z) of raw intensities; float32, same shape.

        The network sees the head framed as the bundle asks (:func:`head_frame`); sizes are padded
        with zeros to the network's multiples and cropped back, so any volume is accepted.
        """
        import torch

        from singlestrip_bids.model.normalize import normalize_intensity

        volume, source, target = framed(data, self.bundle.head_margin_voxels, self.bundle.size_multiple)
        with torch.inference_mode():
            x = normalize_intensity(torch.from_numpy(volume).to(self.device))[None, None]
            with torch.autocast(device_type=self.device.type, dtype=self.autocast or torch.bfloat16,
                                enabled=self.autocast is not None):
                logits = self.unet(x)
            prob = torch.sigmoid(logits.float())[0, 0].cpu().numpy()
        out = np.zeros(data.shape, dtype=np.float32)
        out[source] = prob[target]
        return out


def framed(data: np.ndarray, margin, multiple: int):
    """``data`` (X, Y, Z) copied into the network's input frame (:func:`head_frame`), air elsewhere:
    ``(volume float32, source, target)`` with ``volume[target] = data[source]``."""
    source, target, shape = head_frame(data, margin, multiple)
    volume = np.zeros(shape, dtype=np.float32)
    volume[target] = data[source]
    return volume, source, target


def head_frame(data: np.ndarray, margin, multiple: int):
    """Where the network's input frame lies on ``data`` (X, Y, Z): ``(source, target, shape)``.

    With ``margin`` (voxels) the frame is the head's bounding box (voxels above 5 % of the
    min-to-p99 range, opened by a 3×3×3 cross so that isolated noise does not count) plus ``margin``
    on each side, reaching past the volume's edge where needed; with ``None``, or no head, it is
    the whole volume. ``shape`` is the frame's size rounded up to a multiple of ``multiple``, at
    least two multiples so the coarsest level keeps more than one voxel (instance normalisation
    needs it); ``data[source]`` goes to ``frame[target]``.
    """
    from scipy import ndimage

    low, high = np.zeros(3, int), np.array(data.shape)
    if margin is not None:
        floor, top = float(data.min()), float(np.percentile(data, 99))
        head = np.argwhere(ndimage.binary_opening(data - floor > 0.05 * (top - floor)))
        if len(head):
            low, high = head.min(axis=0) - margin, head.max(axis=0) + 1 + margin
    shape = np.array([max(2, int(np.ceil(s / multiple))) * multiple for s in high - low])
    low = low - (shape - (high - low)) // 2  # centre the rounding
    start, stop = np.maximum(low, 0), np.minimum(low + shape, data.shape)
    source = tuple(slice(int(a), int(b)) for a, b in zip(start, stop))
    target = tuple(slice(int(a - c), int(b - c)) for a, b, c in zip(start, stop, low))
    return source, target, tuple(int(s) for s in shape)


@lru_cache(maxsize=4)
def _cached(bundle_path: str, device: str, precision: str, version: tuple) -> Predictor:
    from singlestrip_bids.model.bundle import load_bundle

    return Predictor(load_bundle(bundle_path), device, precision)


def _bundle_version(bundle_path: Path) -> tuple:
    """(mtime ns, size) of the bundle's config: a bundle rewritten at the same path is loaded anew."""
    config = bundle_path if bundle_path.is_file() else bundle_path / "bundle.json"
    if not config.is_file():
        return ()  # load_bundle reports the missing file
    stat = config.stat()
    return (stat.st_mtime_ns, stat.st_size)


def get_predictor(bundle_path, device="auto", precision="auto") -> Predictor:
    """The predictor for ``bundle_path`` on ``device`` and ``precision``, built once per process and
    bundle version."""
    path = Path(bundle_path).resolve()
    return _cached(str(path), str(device), precision, _bundle_version(path))
