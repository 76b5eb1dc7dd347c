"""Self-training pieces: ranking of pseudo-labels and fine-tuning on real images and masks."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers_bids import DATA_DIR, data_available

from singlestrip_bids.training.self_training import PseudoLabel, bids_name, fine_tune, rank_pseudo_labels

FS = DATA_DIR / "fs_training_t1"


def _label(name, ae, tta=None):
    return PseudoLabel(Path(f"{name}.nii.gz"), Path(f"{name}_mask.nii.gz"), name, 1500.0, ae, tta)


def test_bids_name_drops_folders_and_extensions():
    assert bids_name("sub-01/anat/sub-01_acq-x_T1w.nii.gz") == "sub-01_acq-x_T1w"


def test_ae_ranking_is_by_score_then_name_and_marks_top_k():
    labels = [_label("sub-03_T1w", 0.80), _label("sub-01_T1w", 0.95), _label("sub-02_T1w", 0.80),
              _label("sub-04_T1w", 0.99)]
    ranked = rank_pseudo_labels(labels, "ae", top_k=2)
    assert [label.bids_name for label in ranked] == ["sub-04_T1w", "sub-01_T1w", "sub-02_T1w", "sub-03_T1w"]
    assert [label.selected for label in ranked] == [True, True, False, False]


def test_empty_masks_are_ranked_last_and_never_selected():
    labels = [_label("a", 0.0), _label("b", 0.5), _label("c", 0.7)]
    labels[2].brain_volume_ml = 0.0
    for ranking in ("ae", "none"):
        ranked = rank_pseudo_labels(labels, ranking, top_k=3)
        assert ranked[-1].bids_name == "c" and not ranked[-1].selected
        assert all(label.selected for label in ranked[:2])


def test_masks_far_from_the_labeled_brains_volume_are_never_selected():
    """The fetal case: SL-1's masks of 2-4x the labeled 158 mL brain scored high by AE-QC."""
    labels = [_label("run-2", 0.79), _label("run-3", 0.89), _label("run-4", 0.85), _label("run-5", 0.60)]
    for label, volume in zip(labels, (418.0, 325.0, 150.0, 80.0)):
        label.brain_volume_ml = volume
    ranked = rank_pseudo_labels(labels, "ae", top_k=10, labeled_volume_ml=158.0)
    assert [(label.bids_name, label.selected) for label in ranked] == [
        ("run-4", True), ("run-5", True), ("run-3", False), ("run-2", False)]  # 0.95x and 0.51x are kept
    assert all(label.selected for label in rank_pseudo_labels(labels, "ae", top_k=10))  # no labeled volume: all


def test_tta_ranking_uses_the_tta_score():
    labels = [_label("a", 0.99, 0.5), _label("b", 0.5, 0.9)]
    assert [label.bids_name for label in rank_pseudo_labels(labels, "tta", top_k=1)] == ["b", "a"]


def test_no_ranking_is_a_seeded_random_choice():
    def order(seed):
        labels = [_label(f"sub-{i:02d}_T1w", 0.9) for i in range(8)]
        return [label.bids_name for label in rank_pseudo_labels(labels, "none", top_k=3, seed=seed)]

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert sorted(order(1)) == [f"sub-{i:02d}_T1w" for i in range(8)]


def test_top_k_above_the_number_of_images_keeps_all_and_bad_ranking_fails():
    labels = [_label("a", 0.1), _label("b", 0.2)]
    assert all(label.selected for label in rank_pseudo_labels(labels, "ae", top_k=10))
    with pytest.raises(ValueError, match="ranking"):
        rank_pseudo_labels(labels, "best", top_k=1)


@pytest.fixture(scope="module")
def sl1(tmp_path_factory):
    """A one-step SL-1 bundle from fs sub-01 on an 8 mm grid, with a tiny U-Net; and its config."""
    if not data_available():
        pytest.skip(f"test data folder {DATA_DIR} is absent")
    from singlestrip_bids.model.unet import UNetConfig
    from singlestrip_bids.synthesis.generator import SynthesisConfig
    from singlestrip_bids.training.sl1 import TrainingConfig, train_sl1

    torch.set_num_threads(1)
    config = TrainingConfig(steps=1, voxel_size=8.0, unet=UNetConfig(levels=3, base_features=4, max_features=8),
                            synthesis=SynthesisConfig(patch_sizes=(32,)), seed=0)
    path, _, source = train_sl1(nib.load(FS / "sub-01" / "T1.mgz"), nib.load(FS / "sub-01" / "brainmask_bin.nii.gz"),
                                tmp_path_factory.mktemp("sl1") / "round-0", config, device="cpu")
    return path, config, source


def _pseudo(subject):
    return PseudoLabel(FS / subject / "T1.mgz", FS / subject / "brainmask_bin.nii.gz", subject, 1600.0, 0.9,
                       selected=True)


def _weights(unet):
    return torch.cat([p.detach().flatten() for p in unet.parameters()])


def test_fine_tuning_starts_from_the_bundle_and_is_seeded(sl1):
    from singlestrip_bids.model.bundle import load_bundle

    path, config, source = sl1
    selected = [_pseudo("sub-02")]
    unet, losses, sources, gmm = fine_tune(path, source, selected, config, device="cpu", seed=4)
    again = fine_tune(path, source, selected, config, device="cpu", seed=4)[0]
    start = _weights(load_bundle(path).unet)
    assert len(losses) == config.steps and all(0.0 <= loss <= 1.0 for loss in losses)
    assert len(sources) == 2 and sources[0] is source
    assert [summary["bids_name"] for summary in gmm] == ["sub-02"]
    labels, mask, _, image = sources[1]
    assert labels.shape == mask.shape == source[0].shape and labels.max() == 15 and mask.any()
    assert image.shape == mask.shape and image.dtype == np.float32
    assert torch.equal(_weights(unet), _weights(again))
    # One Adam step at 3e-4 moves weights a little: fine-tuning starts near the bundle, not elsewhere.
    assert not torch.equal(_weights(unet), start)
    assert float((_weights(unet) - start).abs().max()) < 0.01


def test_from_scratch_starts_from_fresh_weights(sl1):
    from singlestrip_bids.model.bundle import load_bundle

    path, config, source = sl1
    unet = fine_tune(path, source, [_pseudo("sub-02")], config, from_scratch=True, device="cpu", seed=4)[0]
    start = _weights(load_bundle(path).unet)
    assert float((_weights(unet) - start).abs().max()) > 0.05


def test_from_scratch_of_a_warm_started_run_starts_where_sl1_started(sl1):
    """``init`` a bundle (here the SL-1 bundle itself, for want of a second one of this tiny size): the
    retrained U-Net starts from its weights, not from random ones."""
    from singlestrip_bids.model.bundle import load_bundle

    path, config, source = sl1
    unet = fine_tune(path, source, [_pseudo("sub-02")], config, from_scratch=True, init=str(path), device="cpu",
                     seed=4)[0]
    assert float((_weights(unet) - _weights(load_bundle(path).unet)).abs().max()) < 0.01


def test_the_best_model_has_the_best_mean_score_and_a_tie_keeps_the_earlier():
    from singlestrip_bids.training.self_training import best_model, mean_score

    def scored(*values, key="ae_dice"):
        return [PseudoLabel(Path(f"{i}.nii.gz"), Path("m"), f"sub-{i}", 1.0, **{"ae_dice": None, key: value})
                for i, value in enumerate(values)]

    assert mean_score(scored(0.9, None, 0.7), "ae") == pytest.approx(0.8)  # a mask without a score is left out
    assert mean_score(scored(0.9, 0.7), "none") == pytest.approx(0.8)  # no ranking score: AE-QC
    assert mean_score(scored(0.5, 0.7, key="tta_dice"), "tta") == pytest.approx(0.6)
    assert best_model({"round-0": scored(0.9, 0.8), "round-1": scored(0.95, 0.7)}, "ae")[0] == "round-0"
    assert best_model({"round-0": scored(0.8), "round-1": scored(0.9), "round-2": scored(0.9)}, "ae") == (
        "round-1", {"round-0": 0.8, "round-1": 0.9, "round-2": 0.9})
    assert best_model({"round-0": scored(None), "round-1": scored(0.2)}, "ae")[0] == "round-1"
