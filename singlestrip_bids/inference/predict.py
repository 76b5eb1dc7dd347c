"""Brain probability on the working grid, with the model loaded once per process."""

from functools import lru_cache
from pathlib import Path

import numpy as np


class Predictor:
    """Wraps a bundle's U-Net on a device; thread count follows torch's settings."""

    def __init__(self, bundle, device="auto"):
        from singlestrip_bids.model.device import resolve_device

        self.bundle = bundle
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.unet = bundle.unet.to(self.device).eval()

    def predict_probability(self, data: np.ndarray) -> np.ndarray:
        """P(brain) for a conformed volume (X, Y, Z) of raw intensities; float32, same shape.

        Sizes that are not multiples of the network's need are padded with zeros and cropped back;
        each is at least two multiples, so that the coarsest level keeps more than one voxel (instance
        normalisation needs it).
        """
        import torch

        from singlestrip_bids.model.normalize import normalize_intensity

        multiple = self.bundle.multiple
        shape = data.shape
        padded = [max(2, int(np.ceil(s / multiple))) * multiple for s in shape]
        volume = np.zeros(padded, dtype=np.float32)
        volume[: shape[0], : shape[1], : shape[2]] = data
        with torch.inference_mode():
            x = normalize_intensity(torch.from_numpy(volume).to(self.device))[None, None]
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                logits = self.unet(x)
            prob = torch.sigmoid(logits.float())[0, 0].cpu().numpy()
        return prob[: shape[0], : shape[1], : shape[2]].astype(np.float32, copy=False)


@lru_cache(maxsize=4)
def _cached(bundle_path: str, device: str, version: tuple) -> Predictor:
    from singlestrip_bids.model.bundle import load_bundle

    return Predictor(load_bundle(bundle_path), device)


def _bundle_version(bundle_path: Path) -> tuple:
    """(mtime ns, size) of the bundle's config: a bundle rewritten at the same path is loaded anew."""
    config = bundle_path if bundle_path.is_file() else bundle_path / "bundle.json"
    if not config.is_file():
        return ()  # load_bundle reports the missing file
    stat = config.stat()
    return (stat.st_mtime_ns, stat.st_size)


def get_predictor(bundle_path, device="auto") -> Predictor:
    """The predictor for ``bundle_path`` on ``device``, built once per process and bundle version."""
    path = Path(bundle_path).resolve()
    return _cached(str(path), str(device), _bundle_version(path))
