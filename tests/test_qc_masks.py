"""``--qc-masks``: score another dataset's masks at participant level, without predicting."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers_bids import DATA_DIR, data_available, make_bids_dataset

from singlestrip_bids.cli.run import main
from singlestrip_bids.io.derivatives import image_outputs

pytestmark = pytest.mark.skipif(not data_available(), reason=f"test data folder {DATA_DIR} is absent")
VOXEL_MM = 8.0


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A bundle with a tiny U-Net and a small 2D autoencoder trained on fs sub-01's mask."""
    from singlestrip_bids.io.conform import conform_mask
    from singlestrip_bids.model.bundle import save_bundle
    from singlestrip_bids.model.unet import UNet, UNetConfig
    from singlestrip_bids.training.autoencoder import train_autoencoder

    torch.set_num_threads(1)
    torch.manual_seed(0)
    unet = UNet(UNetConfig(levels=3, base_features=4, max_features=8))
    mask = conform_mask(nib.load(DATA_DIR / "fs_training_t1" / "sub-01" / "brainmask_bin.nii.gz"), VOXEL_MM,
                        unet.config.multiple)
    ae, _ = train_autoencoder(mask, steps=20, seed=0, device="cpu", voxel_size=VOXEL_MM,
                              architecture={"size": 16, "spacing_mm": 12.0, "channels": [8, 16], "latent": 16})
    return save_bundle(tmp_path_factory.mktemp("model") / "bundle", name="tiny", unet=unet, voxel_size=VOXEL_MM,
                       qc_ae=ae)


@pytest.fixture
def dataset(tmp_path):
    """Raw dataset with sub-01, sub-02, sub-04; their reference masks in bids/derivatives/manual."""
    return make_bids_dataset(tmp_path / "bids", subjects=("01", "02", "04"), with_masks=True)


def _qc(bids, out, subject):
    image = bids / f"sub-{subject}" / "anat" / f"sub-{subject}_T1w.nii.gz"
    return json.loads(image_outputs(image, bids, out).qc_json.read_text())


def test_scores_every_mask_without_predicting(dataset, bundle, tmp_path):
    out = tmp_path / "out"
    masks = dataset / "derivatives" / "manual"
    code = main([str(dataset), str(out), "participant", "--qc-masks", str(masks), "--model", str(bundle),
                 "--skip-bids-validation", "-w", str(tmp_path / "work")])
    assert code == 0
    for subject in ("01", "02", "04"):
        qc = _qc(dataset, out, subject)
        assert 0.0 <= qc["ae_dice"] <= 1.0 and isinstance(qc["qc_pass"], bool)
        assert qc["qc_threshold"] > 0 and qc["brain_volume_ml"] > 1000
        assert qc["bids_name"] == f"sub-{subject}_T1w"
        assert qc["mask_source"].endswith(f"sub-{subject}_desc-brain_mask.nii.gz")
        assert qc["provenance"]["model_id"].startswith("tiny-")
    assert not list(out.rglob("*_mask.nii.gz")) and not list(out.rglob("*_desc-brain_T1w.nii.gz"))
    assert json.loads((out / "dataset_description.json").read_text())["DatasetType"] == "derivative"


def test_mask_on_another_grid_or_missing_is_an_error_of_that_image_only(dataset, bundle, tmp_path, capsys):
    masks = dataset / "derivatives" / "manual"
    mask_02 = masks / "sub-02" / "anat" / "sub-02_desc-brain_mask.nii.gz"
    img = nib.load(mask_02)
    shifted = img.affine.copy()
    shifted[:3, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), shifted), mask_02)
    (masks / "sub-04" / "anat" / "sub-04_desc-brain_mask.nii.gz").unlink()
    out = tmp_path / "out"
    code = main([str(dataset), str(out), "participant", "--qc-masks", str(masks), "--model", str(bundle),
                 "--skip-bids-validation", "-w", str(tmp_path / "work")])
    assert code == 0
    assert "2 image(s) could not be scored" in capsys.readouterr().out
    assert 0.0 <= _qc(dataset, out, "01")["ae_dice"] <= 1.0
    assert "voxel grid" in _qc(dataset, out, "02")["error"] and "ae_dice" not in _qc(dataset, out, "02")
    assert "no mask" in _qc(dataset, out, "04")["error"]


def test_without_a_trained_estimator_the_estimate_is_the_agreement_with_the_unet(dataset, bundle, tmp_path):
    """A bundle with no Dice estimator still scores another tool's mask by the image: the estimate is
    the mask's Dice against the bundle U-Net's own mask of that image."""
    from dataclasses import replace

    from singlestrip_bids.model.bundle import load_bundle
    from singlestrip_bids.model.estimator import estimator_from_unet
    from singlestrip_bids.qc.external import score_external_mask

    out = tmp_path / "out"
    assert load_bundle(bundle).dice_estimator is None
    assert main([str(dataset), str(out), "participant", "--qc-masks", str(dataset / "derivatives" / "manual"),
                 "--model", str(bundle), "--participant-label", "01", "--skip-bids-validation",
                 "-w", str(tmp_path / "work")]) == 0
    qc = _qc(dataset, out, "01")
    image = next(path for path in (dataset / "sub-01").rglob("*_T1w.nii*"))
    mask = dataset / "derivatives" / "manual" / "sub-01" / "anat" / "sub-01_desc-brain_mask.nii.gz"
    trained = load_bundle(bundle)
    expected = score_external_mask(image, mask, replace(trained, dice_estimator=estimator_from_unet(trained.unet)))
    assert qc["dice_estimate"] == expected["dice_estimate"] and qc["qc_score"] == "dice_estimate"
    assert qc["qc_pass"] == (qc["dice_estimate"] >= 0.9)


def test_with_a_dice_estimator_the_estimate_decides(dataset, bundle, tmp_path):
    """Another tool's masks get the estimated Dice too, and the verdict follows it."""
    import shutil

    from singlestrip_bids.model.bundle import add_dice_estimator, load_bundle
    from singlestrip_bids.model.estimator import estimator_from_unet

    with_estimator = tmp_path / "with_estimator"
    shutil.copytree(bundle, with_estimator)
    torch.manual_seed(0)
    add_dice_estimator(with_estimator, estimator_from_unet(load_bundle(bundle).unet))
    out = tmp_path / "out"
    code = main([str(dataset), str(out), "participant", "--qc-masks", str(dataset / "derivatives" / "manual"),
                 "--model", str(with_estimator), "--participant-label", "01", "--skip-bids-validation",
                 "-w", str(tmp_path / "work")])
    assert code == 0
    qc = _qc(dataset, out, "01")
    assert 0.0 <= qc["dice_estimate"] <= 1.0 and 0.0 <= qc["ae_dice"] <= 1.0
    assert qc["qc_score"] == "dice_estimate" and qc["qc_pass"] == (qc["dice_estimate"] >= qc["qc_threshold"] == 0.9)


def test_a_mask_that_disagrees_with_its_sessions_others_is_flagged(bundle, tmp_path):
    """MS patient 01's reference masks of T1w, T2w and FLAIR agree; a FLAIR mask grown by 6 mm is flagged."""
    from scipy import ndimage

    bids = make_bids_dataset(tmp_path / "bids", subjects=("ms01",), with_masks=True)
    masks = bids / "derivatives" / "manual"
    flair = next(masks.glob("sub-ms01/anat/sub-ms01_space-FLAIR_desc-brain_mask.nii.gz"))
    img = nib.load(flair)
    grown = ndimage.distance_transform_edt(np.asanyarray(img.dataobj) == 0, sampling=img.header.get_zooms()[:3]) <= 6
    nib.save(nib.Nifti1Image(grown.astype(np.uint8), img.affine), flair)
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "--qc-masks", str(masks), "--model", str(bundle),
                 "--suffix", "T1w", "T2w", "FLAIR", "--skip-bids-validation", "-w", str(tmp_path / "work")])
    assert code == 0
    qc = {path.name.split("_desc")[0]: json.loads(path.read_text()) for path in out.rglob("*_qc.json")}
    assert set(qc) == {"sub-ms01", "sub-ms01_space-T2w", "sub-ms01_space-FLAIR"}
    assert qc["sub-ms01_space-FLAIR"]["session_volume_ratio"] > 1.2
    assert qc["sub-ms01_space-FLAIR"]["qc_pass"] is False
    for name in ("sub-ms01", "sub-ms01_space-T2w"):
        assert qc[name]["session_volume_consistent"] is True, qc[name]["session_volume_ratio"]
