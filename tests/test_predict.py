"""The network's input frame: the head plus a margin, whatever the scan's field of view."""

import nibabel as nib
import numpy as np
import pytest
from helpers_bids import DATA_DIR

from singlestrip_bids.inference.predict import Predictor, head_frame
from singlestrip_bids.io.conform import conform
from singlestrip_bids.model.bundle import default_bundle_path, load_bundle


def _box(shape, low, high, value=100.0):
    data = np.zeros(shape, np.float32)
    data[tuple(slice(a, b) for a, b in zip(low, high))] = value
    return data


def test_frame_is_the_head_box_plus_margin_rounded_to_the_multiple():
    data = _box((96, 96, 96), (20, 30, 10), (60, 70, 42))  # head 40 x 40 x 32 voxels
    source, target, shape = head_frame(data, 8, 16)
    assert shape == (64, 64, 48)  # 56, 56, 48 rounded up to multiples of 16
    assert [s.start for s in source] == [8, 18, 2] and [t.start for t in target] == [0, 0, 0]
    frame = np.zeros(shape, np.float32)
    frame[target] = data[source]
    assert frame.sum() == data.sum()  # the whole head is inside
    inside = np.argwhere(frame > 0)
    assert (inside.min(0) >= 8).all() and (np.array(shape) - 1 - inside.max(0) >= 8).all()


def test_frame_reaches_past_the_edge_of_a_tight_field_of_view():
    data = np.random.default_rng(0).uniform(50, 150, (48, 48, 48)).astype(np.float32)  # all head
    data[0, 0, 0] = 0.0
    source, target, shape = head_frame(data, 12, 16)
    assert shape == (80, 80, 80)
    assert all(s == slice(0, 48) for s in source) and all(t == slice(16, 64) for t in target)


def test_no_margin_or_no_head_is_the_whole_volume():
    data = _box((40, 50, 60), (10, 10, 10), (20, 20, 20))
    for volume, margin in ((data, None), (np.zeros_like(data), 8)):
        source, target, shape = head_frame(volume, margin, 16)
        assert shape == (48, 64, 64)
        assert [s.stop - s.start for s in source] == [40, 50, 60]


def test_isolated_bright_noise_does_not_widen_the_frame():
    data = _box((96, 96, 96), (30, 30, 30), (60, 60, 60))
    data[2, 2, 2] = data[90, 5, 80] = 1000.0
    _, _, shape = head_frame(data, 4, 16)
    assert shape == (48, 48, 48)


def test_prediction_on_a_wide_field_of_view_ignores_the_extra_air():
    """The same real head with 60 mm of extra air around it gets the same P(brain) inside the head."""
    image = DATA_DIR / "icbm152_2009c_2mm" / "2mm_T1.nii.gz"
    if not image.is_file():
        pytest.skip("../shared/data/icbm152_2009c_2mm is absent")
    bundle = load_bundle(default_bundle_path())
    assert bundle.head_margin_voxels == 12  # the shipped model frames the head with 36 mm of 3 mm voxels
    data = conform(nib.load(image), bundle.voxel_size, bundle.size_multiple).data
    wide = np.pad(data, 20)
    predictor = Predictor(bundle, "cpu")
    prob = predictor.predict_probability(data)
    prob_wide = predictor.predict_probability(wide)[20:-20, 20:-20, 20:-20]
    assert prob.shape == data.shape and prob.dtype == np.float32
    assert (prob > 0.5).sum() > 0
    assert np.array_equal(prob > 0.5, prob_wide > 0.5)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_precision_is_what_the_forward_pass_uses(precision):
    """fp32 and bf16 give nearly the same P(brain) on the centre of a real head (a cube of 32 working
    voxels: on a CPU without native bf16 the whole head takes over ten minutes); bf16 is not fp32
    under another name."""
    import torch

    image = DATA_DIR / "icbm152_2009c_2mm" / "2mm_T1.nii.gz"
    if not image.is_file():
        pytest.skip("../shared/data/icbm152_2009c_2mm is absent")
    torch.set_num_threads(1)
    bundle = load_bundle(default_bundle_path())
    head = conform(nib.load(image), bundle.voxel_size, bundle.size_multiple).data
    data = head[tuple(slice(n // 2 - 16, n // 2 + 16) for n in head.shape)]
    reference = Predictor(bundle, "cpu", "fp32").predict_probability(data)
    predictor = Predictor(bundle, "cpu", precision)
    assert predictor.autocast == (torch.bfloat16 if precision == "bf16" else None)
    prob = predictor.predict_probability(data)
    assert prob.dtype == np.float32
    difference = np.abs(prob - reference).max()
    assert (difference == 0) == (precision == "fp32") and difference < 0.2
    assert 0.2 < np.mean(reference > 0.5) < 1.0  # brain and not only brain: a boundary to disagree on
    assert np.mean((prob > 0.5) != (reference > 0.5)) < 1e-3
