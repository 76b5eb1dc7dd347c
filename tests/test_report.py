"""report: the PNG encoder, aspect-correct mosaics with mask contours, the per-subject HTML page."""

import struct
import zlib
from html.parser import HTMLParser

import nibabel as nib
import numpy as np
import pytest
from helpers_bids import DATA_DIR, data_available

from singlestrip_bids.io.atomic import atomic_write_json
from singlestrip_bids.io.derivatives import image_outputs
from singlestrip_bids.report.figures import (
    CONTOUR_RGB,
    GAP_PX,
    PANEL_PX,
    canonical_arrays,
    encode_png,
    mask_mosaic,
    write_mask_figure,
)
from singlestrip_bids.report.html import write_subject_report

needs_data = pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")


def decode_png(data: bytes) -> np.ndarray:
    """Independent reader for the 8-bit RGB, filter-0 PNGs written by encode_png (checks CRCs)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind, payload = data[position + 4:position + 8], data[position + 8:position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length:position + 12 + length])
        assert crc == zlib.crc32(kind + payload)
        chunks.append((kind, payload))
        position += 12 + length
    assert [kind for kind, _ in chunks][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour) == (8, 2)
    raw = zlib.decompress(b"".join(payload for kind, payload in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + 3 * width)
    assert not rows[:, 0].any()
    return rows[:, 1:].reshape(height, width, 3)


def test_png_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 13, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(encode_png(rgb)), rgb)
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4), np.uint8))


def _contour_boxes(mosaic, panel_px, count=5):
    """Height and width (pixels) of the contour's bounding box in every panel of a regular mosaic."""
    contour = np.all(mosaic == CONTOUR_RGB, axis=2)
    boxes = []
    for row in range(3):
        for column in range(count):
            top, left = row * (panel_px + GAP_PX), column * (panel_px + GAP_PX)
            rows, cols = np.nonzero(contour[top:top + panel_px, left:left + panel_px])
            boxes.append((np.ptp(rows) + 1, np.ptp(cols) + 1) if rows.size else (0, 0))
    return boxes


def test_mosaic_is_aspect_correct_for_thick_slices():
    """A ball of 20 mm radius in 1x1x3 mm voxels is drawn as circles in every view."""
    sizes = (1.0, 1.0, 3.0)
    shape = (60, 60, 20)  # a 60 mm cube
    grid = np.indices(shape).astype(float)
    ball = sum(((grid[a] - (shape[a] - 1) / 2) * sizes[a]) ** 2 for a in range(3)) <= 20 ** 2
    image = np.where(ball, 100.0, 10.0) + grid[0]
    mosaic = mask_mosaic(image, ball, sizes)
    assert mosaic.shape == (3 * PANEL_PX + 2 * GAP_PX, 5 * PANEL_PX + 4 * GAP_PX, 3)
    boxes = _contour_boxes(mosaic, PANEL_PX)
    for height, width in boxes:
        assert height > 0 and abs(height - width) <= 0.08 * max(height, width)
    middle = [boxes[2], boxes[7], boxes[12]]  # central slice of each view: the ball's full 40 mm
    assert all(abs(height - 40 * PANEL_PX / 60) <= 0.1 * 40 * PANEL_PX / 60 for height, _ in middle)


def test_mosaic_orientation():
    """Superior is up in sagittal/coronal rows, anterior up in axial, the subject's right on the right."""
    shape = (40, 40, 40)
    image = np.ones(shape)
    mask = np.zeros(shape, bool)
    mask[25:35, 25:35, 25:35] = True  # right, anterior, superior corner block
    contour = np.all(mask_mosaic(image, mask, (1, 1, 1), slices_per_view=1) == CONTOUR_RGB, axis=2)
    for row in range(3):
        top = row * (PANEL_PX + GAP_PX)
        rows, cols = np.nonzero(contour[top:top + PANEL_PX, :PANEL_PX])
        assert rows.mean() < PANEL_PX / 2  # superior (or anterior in the axial row) is up
        assert cols.mean() > PANEL_PX / 2  # anterior (sagittal) or right (coronal, axial) is right


@needs_data
def test_canonical_arrays_reorient_lps_to_ras():
    img = nib.load(DATA_DIR / "ms_lesjak_longitudinal" / "patient01" / "study1_T1W.nii.gz")
    mask = np.asanyarray(nib.load(DATA_DIR / "ms_lesjak_longitudinal" / "patient01" /
                                  "study1_T1W_brainmask.nii.gz").dataobj)
    image, ras_mask, sizes = canonical_arrays(img, mask)
    canonical = nib.as_closest_canonical(img)
    assert np.array_equal(image, canonical.get_fdata(dtype=np.float32))
    assert np.array_equal(ras_mask, nib.orientations.apply_orientation(
        mask, nib.orientations.io_orientation(img.affine)).astype(bool))
    assert np.allclose(sizes, canonical.header.get_zooms()[:3], atol=1e-4)


@needs_data
def test_write_mask_figure_on_real_4d_image(tmp_path):
    img = nib.load(DATA_DIR / "niivue_nomask" / "pcasl.nii.gz")
    mask = np.zeros(img.shape[:3], np.uint8)
    mask[10:40, 15:50, 4:16] = 1
    image, ras_mask, sizes = canonical_arrays(img, mask)
    path = write_mask_figure(image, ras_mask, tmp_path / "sub-01" / "figures" / "x.png", voxel_sizes=sizes)
    picture = decode_png(path.read_bytes())
    assert picture.shape[2] == 3 and np.all(picture == CONTOUR_RGB, axis=2).sum() > 100
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.png"]


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images, self.text, self.tag = [], [], [], None

    def handle_starttag(self, tag, attrs):
        self.tag = tag
        attrs = dict(attrs)
        if tag == "a":
            self.links.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs["src"])

    def handle_data(self, data):
        if self.tag not in ("style", "title"):
            self.text.append(data)


def test_subject_report(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    t1w = image_outputs(raw / "sub-01/anat/sub-01_T1w.nii.gz", raw, out)
    t2w = image_outputs(raw / "sub-01/anat/sub-01_T2w.nii.gz", raw, out)
    atomic_write_json({"brain_volume_ml": 1234.56, "ae_dice": np.float32(0.9), "qc_pass": False,
                       "qc_threshold": 0.93, "nonfinite_voxels": 3, "dice_estimate": 0.871,
                       "session_volume_ratio": 1.122, "session_volume_consistent": True}, t1w.qc_json)
    t1w.figure.parent.mkdir(parents=True)
    t1w.figure.write_bytes(encode_png(np.zeros((2, 2, 3), np.uint8)))
    atomic_write_json({"brain_volume_ml": 1100.0, "session_volume_ratio": 0.891,
                       "session_volume_consistent": False}, t2w.qc_json)
    path = write_subject_report(out, "sub-01", [t1w, t2w])
    assert path == out / "sub-01.html"
    page = path.read_text()
    assert str(tmp_path) not in page  # relative links only: the folder can move
    parsed = _Collector()
    parsed.feed(page)
    assert parsed.images == ["sub-01/figures/sub-01_desc-brain_mask.png"]
    assert "sub-01/anat/sub-01_space-T2w_desc-brain_mask.nii.gz" in parsed.links
    assert "sub-01/anat/sub-01_desc-brain_qc.json" in parsed.links
    text = " ".join(parsed.text)
    for expected in ("1234.6 mL", "0.900", "flagged", "0.930", "1100.0 mL", "No figure.", "0.871", "1.12×",
                     "0.89×"):
        assert expected in text
    assert text.count("flagged") == 1 and "pass" not in text.replace("flagged", "")
    assert text.count("disagrees") == 1  # only the T2w mask's volume is off
