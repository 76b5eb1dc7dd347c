"""Model bundles: round trip, no flags to load, tampered or foreign files refused."""

import json

import numpy as np
import pytest
import torch

from singlestrip_bids.errors import UserError
from singlestrip_bids.inference.predict import Predictor, get_predictor
from singlestrip_bids.model.bundle import (
    check_bundle,
    default_bundle_path,
    load_bundle,
    read_bundle_config,
    save_bundle,
)
from singlestrip_bids.model.unet import UNet, UNetConfig

TINY = UNetConfig(levels=3, base_features=4, max_features=8)


@pytest.fixture
def bundle_dir(tmp_path):
    torch.manual_seed(0)
    return save_bundle(tmp_path / "model", name="tiny", unet=UNet(TINY), voxel_size=3.0, extra={"seed": 0})


def test_round_trip_gives_the_same_predictions_without_flags(bundle_dir):
    bundle = load_bundle(bundle_dir)
    assert bundle.unet.config == TINY and bundle.voxel_size == 3.0 and bundle.size_multiple == 4
    assert bundle.model_id.startswith("tiny-") and bundle.config["package_version"]
    volume = np.random.default_rng(0).random((20, 24, 16)).astype(np.float32)
    first = Predictor(bundle, "cpu").predict_probability(volume)
    second = Predictor(load_bundle(bundle_dir / "bundle.json"), "cpu").predict_probability(volume)
    assert first.shape == volume.shape and np.array_equal(first, second)
    assert 0 <= first.min() and first.max() <= 1


def test_the_inference_block_is_the_one_source_and_old_bundles_give_the_same(bundle_dir):
    written = json.loads((bundle_dir / "bundle.json").read_text())
    assert written["inference"] == {"voxel_size_mm": 3.0, "size_multiple": 4, "head_margin_mm": None,
                                    "normalization": "min_p99_clip", "mask_threshold": 0.5}
    assert "working_voxel_size" not in written and "head_margin_mm" not in written
    shipped = load_bundle(default_bundle_path())  # written before the block existed
    assert "inference" not in shipped.config
    assert shipped.inference == {"voxel_size_mm": 3.0, "size_multiple": 16, "head_margin_mm": 36.0,
                                 "normalization": "min_p99_clip", "mask_threshold": 0.5}
    assert (shipped.voxel_size, shipped.size_multiple, shipped.head_margin_voxels) == (3.0, 16, 12)


def test_tampered_weights_are_refused(bundle_dir):
    weights = bundle_dir / "unet.pt"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256"):
        load_bundle(bundle_dir)
    with pytest.raises(UserError, match="sha256"):  # the run's driver refuses it without loading it
        check_bundle(bundle_dir)
    weights.unlink()
    with pytest.raises(UserError, match="U-Net weights file 'unet.pt' is missing"):
        check_bundle(bundle_dir)


def test_a_pickle_that_would_run_code_is_refused(bundle_dir, tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    torch.save({"x": Evil()}, bundle_dir / "unet.pt")
    config = json.loads((bundle_dir / "bundle.json").read_text())
    import hashlib

    config["unet"]["sha256"] = hashlib.sha256((bundle_dir / "unet.pt").read_bytes()).hexdigest()
    (bundle_dir / "bundle.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="not a plain weights file"):
        load_bundle(bundle_dir)


def test_foreign_folders_and_files_are_refused(tmp_path):
    with pytest.raises(UserError, match="no bundle.json"):
        load_bundle(tmp_path)
    (tmp_path / "bundle.json").write_text('{"format": "something-else"}')
    with pytest.raises(UserError, match="not a singlestrip model bundle"):
        read_bundle_config(tmp_path)
    (tmp_path / "bundle.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        read_bundle_config(tmp_path)


def test_saving_over_an_existing_bundle_replaces_it_whole(bundle_dir):
    torch.manual_seed(1)
    save_bundle(bundle_dir, name="second", unet=UNet(TINY), voxel_size=2.0)
    assert load_bundle(bundle_dir).model_id.startswith("second-")
    assert not list(bundle_dir.parent.glob(".model*"))  # no temporary left behind


def test_the_cached_predictor_follows_a_bundle_rewritten_in_place(bundle_dir):
    first = get_predictor(bundle_dir, "cpu")
    assert get_predictor(bundle_dir, "cpu") is first
    torch.manual_seed(2)
    save_bundle(bundle_dir, name="rewritten", unet=UNet(TINY), voxel_size=3.0)
    assert get_predictor(bundle_dir, "cpu").bundle.model_id.startswith("rewritten-")


def test_the_shipped_default_bundle_loads():
    bundle = load_bundle(default_bundle_path())
    assert bundle.config["training"]["labeled"]
    assert bundle.voxel_size > 0
