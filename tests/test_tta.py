"""TTA agreement: seeded draws, rotations undone, scores in [0, 1], with a real U-Net predictor."""

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers_bids import DATA_DIR, data_available

from singlestrip_bids.io.conform import conform
from singlestrip_bids.metrics import dice
from singlestrip_bids.qc.tta import tta_agreement

pytestmark = pytest.mark.skipif(not data_available(), reason=f"test data folder {DATA_DIR} is absent")


@pytest.fixture(scope="module")
def head():
    """fs_training_t1/sub-01 (T1 with skull) conformed to an 8 mm working grid: float32 (32, 32, 32)."""
    return conform(nib.load(DATA_DIR / "fs_training_t1" / "sub-01" / "T1.mgz"), voxel_size=8.0, multiple=4).data


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    """A real ``inference.predict.Predictor`` over a tiny, seeded, untrained U-Net bundle."""
    from singlestrip_bids.inference.predict import Predictor
    from singlestrip_bids.model.bundle import load_bundle, save_bundle
    from singlestrip_bids.model.unet import UNet, UNetConfig

    torch.manual_seed(0)
    unet = UNet(UNetConfig(levels=3, base_features=4, max_features=8))
    path = save_bundle(tmp_path_factory.mktemp("bundle") / "tiny", name="tiny", unet=unet, voxel_size=8.0)
    return Predictor(load_bundle(path), device="cpu")


class ThresholdSegmenter:
    """A rotation-equivariant segmenter: brain = voxels brighter than a fixed fraction of the p99."""

    def __init__(self, data):
        self.level = 0.35 * float(np.percentile(data, 99))

    def predict_probability(self, data):
        return (data > self.level).astype(np.float32)


def test_same_seed_same_result_and_draws_in_range(head, predictor):
    first = tta_agreement(predictor, head, copies=3, seed=5)
    again = tta_agreement(predictor, head, copies=3, seed=5)
    other = tta_agreement(predictor, head, copies=3, seed=6)
    assert first["draws"] == again["draws"] != other["draws"]
    assert first["tta_dice"] == again["tta_dice"]
    assert np.array_equal(first["pseudo_label"], again["pseudo_label"])
    assert 0.0 <= first["tta_dice"] <= 1.0
    assert first["pseudo_label"].shape == head.shape and first["pseudo_label"].dtype == bool
    assert len(first["draws"]) == 3
    for draw in first["draws"]:
        assert 0.8 <= draw["IntensityScaling"]["factor"] <= 1.2
        assert all(abs(angle) <= 30 for angle in draw["Rotation"]["degrees"])


def test_without_augmentation_every_copy_is_the_prediction(head, predictor):
    result = tta_agreement(predictor, head, copies=3, intensity=0.0, rotation_deg=0.0)
    direct = predictor.predict_probability(head) > 0.5
    assert np.array_equal(result["pseudo_label"], direct)
    assert result["tta_dice"] == (1.0 if direct.any() else 0.0)


def test_rotations_are_undone(head):
    segmenter = ThresholdSegmenter(head)
    direct = segmenter.predict_probability(head) > 0.5
    result = tta_agreement(segmenter, head, copies=4, intensity=0.0, rotation_deg=30.0, seed=1)
    # Undone rotations leave only interpolation differences; left rotated, 30° copies would disagree far more.
    assert result["tta_dice"] > 0.9
    assert dice(result["pseudo_label"], direct) > 0.93


def test_empty_predictions_score_zero(head):
    class Nothing:
        def predict_probability(self, data):
            return np.zeros_like(data)

    assert tta_agreement(Nothing(), head, copies=2)["tta_dice"] == 0.0
