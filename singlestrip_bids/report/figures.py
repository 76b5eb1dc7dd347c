"""PNG mosaics of an image with its brain-mask contour, and a minimal PNG encoder (zlib only)."""

import struct
import zlib

import numpy as np
from scipy import ndimage

from singlestrip_bids.io.atomic import atomic_write_bytes

CONTOUR_RGB = (255, 96, 0)
GAP_PX = 4
PANEL_PX = 180  # longest side of a panel, in pixels


def encode_png(rgb: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 RGB array as an 8-bit truecolour PNG (no filtering)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width, channels = rgb.shape
    if channels != 3:
        raise ValueError(f"expected (H, W, 3) RGB, got shape {rgb.shape}")
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def canonical_arrays(img, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (4D → mean over time, NaN → 0) and mask reordered to the closest RAS axes.

    Returns ``(image (X, Y, Z), mask (X, Y, Z), voxel sizes mm)`` as ``write_mask_figure`` expects
    them: views of the arrays where possible (an integer 3D image is not copied), non-zero mask
    voxels being inside.
    """
    import nibabel as nib

    from singlestrip_bids.io.conform import native_volume
    from singlestrip_bids.io.nifti import voxel_sizes_mm

    transform = nib.orientations.io_orientation(img.affine)
    image = nib.orientations.apply_orientation(native_volume(img), transform)
    mask = nib.orientations.apply_orientation(np.asarray(mask), transform)
    sizes = voxel_sizes_mm(img.affine)[transform[:, 0].astype(int)]
    return image, mask, sizes


def _window(image: np.ndarray) -> tuple[float, float]:
    """Display window: 0.5th–99.5th percentiles of the non-zero voxels (every 2nd voxel per axis)."""
    values = np.asarray(image[::2, ::2, ::2], dtype=np.float32)
    values = values[values != 0]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, (0.5, 99.5))
    return float(low), float(max(high, low + 1e-6))


def _grey(slice2d: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    low, high = window
    return (np.clip((slice2d - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def _panel(grey2d: np.ndarray, mask2d: np.ndarray, sizes_mm, pixel_mm: float) -> np.ndarray:
    """One slice (rows = first axis) resampled to square ``pixel_mm`` pixels, contour in colour."""
    shape = [max(1, int(round(n * size / pixel_mm))) for n, size in zip(grey2d.shape, sizes_mm)]
    rows = np.minimum((np.arange(shape[0]) + 0.5) * pixel_mm / sizes_mm[0], grey2d.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * pixel_mm / sizes_mm[1], grey2d.shape[1] - 1).astype(int)
    grey = grey2d[np.ix_(rows, cols)]
    inside = mask2d[np.ix_(rows, cols)].astype(bool)
    contour = inside & ~ndimage.binary_erosion(inside, border_value=0)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[contour] = CONTOUR_RGB
    return rgb


def _slice_positions(mask: np.ndarray, axis: int, count: int) -> np.ndarray:
    """``count`` slice indices spread over the mask's extent along ``axis`` (the image's if empty)."""
    other = tuple(a for a in range(3) if a != axis)
    present = np.flatnonzero(mask.any(axis=other))
    low, high = (present[0], present[-1]) if present.size else (0, mask.shape[axis] - 1)
    return np.unique(np.round(np.linspace(low, high, count + 2)[1:-1]).astype(int))


def mask_mosaic(image3d, mask3d, voxel_sizes, *, slices_per_view=5) -> np.ndarray:
    """(H, W, 3) uint8 mosaic: rows of sagittal, coronal and axial slices, mask contour in colour.

    ``image3d``/``mask3d``: (X, Y, Z) arrays in (closest) RAS orientation (the mask non-zero inside);
    ``voxel_sizes``: mm. Only the shown slices are converted, so views of large volumes are cheap.
    Pixels are square in mm, so thick-slice images keep their proportions; superior is up,
    anterior is right (sagittal) or up (axial), the subject's right is on the right.
    """
    image3d, mask3d = np.asanyarray(image3d), np.asanyarray(mask3d)
    if image3d.shape != mask3d.shape or image3d.ndim != 3:
        raise ValueError(f"image {image3d.shape} and mask {mask3d.shape} must be the same 3D shape")
    sizes = np.asarray(voxel_sizes, dtype=float)
    window = _window(image3d)
    pixel_mm = float(np.max(np.array(image3d.shape) * sizes)) / PANEL_PX
    rows = []
    for axis in range(3):
        in_plane = [a for a in range(3) if a != axis]  # (Y, Z), (X, Z), (X, Y)
        panels = [
            _panel(_grey(_view(image3d, axis, index), window), _view(mask3d, axis, index),
                   sizes[in_plane][::-1], pixel_mm)
            for index in _slice_positions(mask3d, axis, slices_per_view)
        ]
        rows.append(_hstack(panels))
    width = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, GAP_PX), (0, width - row.shape[1]), (0, 0))) for row in rows]
    return np.concatenate(padded, axis=0)[:-GAP_PX]


def _view(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """Slice ``index`` along ``axis`` with its last in-plane axis (Z, or Y for axial) pointing up."""
    return volume[(slice(None),) * axis + (index,)].T[::-1]


def _hstack(panels: list[np.ndarray]) -> np.ndarray:
    height = max(panel.shape[0] for panel in panels)
    padded = [np.pad(panel, ((0, height - panel.shape[0]), (0, GAP_PX), (0, 0))) for panel in panels]
    return np.concatenate(padded, axis=1)[:, :-GAP_PX]


def write_mask_figure(image3d, mask3d, out_png, *, voxel_sizes):
    """Write ``mask_mosaic(image3d, mask3d, voxel_sizes)`` as a PNG file (atomically); returns the path."""
    return atomic_write_bytes(encode_png(mask_mosaic(image3d, mask3d, voxel_sizes)), out_png)
