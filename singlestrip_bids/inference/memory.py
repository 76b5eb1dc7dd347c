"""The memory a prediction needs, judged from the image's header before anything runs."""

import os

import numpy as np

from singlestrip_bids.errors import UserError

#: Peak bytes per working-grid voxel and per full-resolution U-Net feature of a CPU fp32 prediction
#: (measured on the shipped U-Net, 16 features: 650-745 B per voxel on 64³-128³ grids), rounded up.
BYTES_PER_VOXEL_FEATURE = 48
#: Native-grid copies held at once (float32 volume, its smoothed copy, the mask and brain image).
NATIVE_COPIES = 4


def prediction_memory_gb(img, config: dict) -> tuple[float, tuple[int, int, int]]:
    """GB that stripping ``img`` (nibabel, 3D or 4D) with a bundle of ``config`` needs, and its working grid shape."""
    from singlestrip_bids.io.conform import working_grid
    from singlestrip_bids.model.bundle import bundle_inference

    inference = bundle_inference(config)
    shape, _ = working_grid(img.shape[:3], np.asarray(img.affine, float), float(inference["voxel_size_mm"]),
                            int(inference["size_multiple"]))
    features = int(config["unet"]["config"]["base_features"])
    working = float(np.prod(shape)) * features * BYTES_PER_VOXEL_FEATURE
    native = float(np.prod(img.shape)) * 4 * NATIVE_COPIES
    return (working + native) / 1e9, tuple(int(size) for size in shape)


def available_memory_gb(mem_gb: float | None) -> float:
    """``mem_gb`` when the user gave it, else the machine's physical memory (GB)."""
    if mem_gb:
        return float(mem_gb)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9


def check_prediction_memory(images, config: dict, mem_gb: float | None) -> None:
    """UserError for the first image whose prediction needs more memory than is available.

    Reads headers only: the images are readable ones (``io.nifti.load_image`` has checked them).
    """
    import nibabel as nib

    available = available_memory_gb(mem_gb)
    for image in images:
        need, shape = prediction_memory_gb(nib.load(image), config)
        if need > available:
            grid = "x".join(map(str, shape))
            source = "--mem-gb" if mem_gb else "this machine's memory"
            raise UserError(f"{image}: stripping it needs about {need:,.1f} GB (a {grid} working grid), more than "
                            f"the {available:.3g} GB available ({source}): check its header's voxel size and field "
                            "of view, or give the run more memory")
