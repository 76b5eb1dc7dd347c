"""Load a NIfTI or MGZ image and refuse what the pipeline cannot use, with a one-line message."""

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from singlestrip_bids.errors import UserError


def load_image(path) -> nib.spatialimages.SpatialImage:
    """Load a 3D or 4D NIfTI-1/2 or MGZ image and check that its voxels can be read.

    The whole data array is read here, so a truncated or corrupt file fails now with a
    ``UserError`` instead of deep inside a workflow. NaN/Inf voxels are accepted (they are zeroed
    and counted when the reference volume is built). Returns the image with its (scaled) data in
    memory and its header unchanged.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise UserError(f"{path}: broken link (annexed data not downloaded?)")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file (0 bytes)")
    try:
        img = nib.load(path)
    except ImageFileError:
        raise UserError(f"{path}: not a NIfTI or MGZ image") from None
    except Exception as exc:  # nibabel raises many types for a damaged header
        raise UserError(f"{path}: cannot read the header ({_one_line(exc)})") from None
    _check_shape(path, img.shape)
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # EOFError, zlib.error, ValueError... for truncated or corrupt data
        raise UserError(f"{path}: truncated or corrupt image data ({_one_line(exc)})") from None
    if not np.all(np.isfinite(img.affine)) or abs(np.linalg.det(img.affine[:3, :3])) < 1e-12:
        raise UserError(f"{path}: invalid voxel-to-world affine (zero or non-finite voxel size)")
    # Given its own affine, nibabel leaves the header's qform/sform exactly as stored.
    return type(img)(data, img.affine, img.header)


#: voxel edges (mm) an MRI image can have, ×10-scaled rodent headers included; outside: a broken header
VOXEL_SIZE_RANGE_MM = (0.01, 30.0)


def check_image_content(path, img) -> None:
    """UserError for an image that cannot hold anatomy: voxel edges outside ``VOXEL_SIZE_RANGE_MM``,
    or one value in every finite voxel (an empty or constant image)."""
    sizes = voxel_sizes_mm(img.affine)
    low, high = VOXEL_SIZE_RANGE_MM
    if sizes.min() < low or sizes.max() > high:
        raise UserError(f"{path}: voxel size {' x '.join(f'{s:.3g}' for s in sizes)} mm is outside "
                        f"{low}-{high} mm: check the header's pixdim and affine")
    data = np.asanyarray(img.dataobj)
    finite = data[np.isfinite(data)] if np.issubdtype(data.dtype, np.floating) else data
    if finite.size == 0 or finite.min() == finite.max():
        value = "no finite value" if finite.size == 0 else f"every voxel is {finite.flat[0]:g}"
        raise UserError(f"{path}: no anatomy to strip ({value})")


def voxel_sizes_mm(affine) -> np.ndarray:
    """Voxel edge lengths in mm of a 4x4 voxel → world affine (column norms, right for oblique grids)."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def nifti_like(img, data: np.ndarray, dtype) -> nib.Nifti1Image:
    """A NIfTI image of ``data`` on ``img``'s grid with its exact geometry (affine, qform/sform, codes).

    A NIfTI ``img`` lends its whole header (only shape and data type change); an MGZ ``img`` gives
    its affine as qform and sform with code 1 (scanner), in mm.
    """
    if isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        out = type(img)(data, img.affine, img.header.copy())  # its own affine: header geometry unchanged
    else:
        out = nib.Nifti1Image(data, img.affine)
        out.set_qform(img.affine, code="scanner")
        out.set_sform(img.affine, code="scanner")
        out.header.set_xyzt_units("mm")
    out.set_data_dtype(dtype)
    return out


def _check_shape(path: Path, shape: tuple) -> None:
    if len(shape) > 4:
        raise UserError(f"{path}: {len(shape)}D image (shape {tuple(shape)}); only 3D or 4D images are supported")
    spatial = tuple(shape[:3])
    if len(spatial) < 3 or sum(size > 1 for size in spatial) < 3:
        raise UserError(f"{path}: not a 3D volume (spatial shape {spatial}); 2D images are not supported")


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def mask_volume_ml(mask: np.ndarray, affine: np.ndarray) -> float:
    """Volume (mL) of the nonzero voxels of ``mask`` (X, Y, Z) on the grid of ``affine`` (mm)."""
    return float(np.count_nonzero(mask) * abs(np.linalg.det(np.asarray(affine)[:3, :3])) / 1000.0)
