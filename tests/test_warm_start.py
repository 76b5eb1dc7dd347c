"""--init: where one-shot training starts, and a tiny group run on real mouse EPI (auto sizes, warm start, console)."""

import json

import pytest
import torch
from helpers_bids import DATA_DIR, data_available

from singlestrip_bids.errors import UserError
from singlestrip_bids.model.unet import UNetConfig
from singlestrip_bids.training.sl1 import TrainingConfig, initial_unet

pytestmark = pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")
MOUSE = DATA_DIR / "mouse_epi_sidneyp"


def test_default_init_is_the_shipped_models_weights_and_scratch_is_not():
    from singlestrip_bids.model.bundle import default_bundle_path, load_bundle

    shipped = load_bundle(default_bundle_path()).unet.state_dict()
    unet, description = initial_unet(TrainingConfig(), "default")
    assert description == "default"
    assert all(torch.equal(value, shipped[key]) for key, value in unet.state_dict().items())
    torch.manual_seed(0)
    scratch, description = initial_unet(TrainingConfig(), "scratch")
    assert description == "scratch"
    assert not torch.equal(scratch.state_dict()["head.weight"], shipped["head.weight"])


def test_warm_starts_are_short_and_decay_their_rate_and_scratch_is_the_shipped_recipe():
    from singlestrip_bids.training.group import one_shot_config

    for init in ("default", "synthetic", "some/bundle"):
        warm = one_shot_config(init, seed=3)
        assert (warm.steps, warm.learning_rate, warm.final_learning_rate, warm.seed) == (500, 1e-3, 1e-5, 3)
    scratch = one_shot_config("scratch")
    assert (scratch.steps, scratch.final_learning_rate) == (3000, None)
    assert one_shot_config("default", steps=40).steps == 40
    # half the pairs show the real image unless told otherwise (an explicit 0 paints every pair)
    assert warm.synthesis.real_image_probability == scratch.synthesis.real_image_probability == 0.5
    assert one_shot_config("default", real_image_probability=0.0).synthesis.real_image_probability == 0.0


def test_self_training_keeps_sl1s_config_but_its_own_steps_and_rate():
    from singlestrip_bids.training.group import GroupRun, GroupSettings, one_shot_config

    def ssl_config(**settings):
        run = GroupRun(labeled_image=None, labeled_mask=None, unlabeled=[], output_dir=None, work_dir=None,
                       settings=GroupSettings(**settings), config=one_shot_config("default", seed=7),
                       ae_architecture={}, ae_augmentation={}, sizing=None, device="cpu")
        return run.ssl_config

    constant = ssl_config(ssl_steps=200)
    assert (constant.steps, constant.learning_rate, constant.final_learning_rate, constant.seed) == (200, 1e-4, None, 7)
    decaying = ssl_config(ssl_learning_rate=3e-4, ssl_final_learning_rate=1e-6)
    assert (decaying.steps, decaying.learning_rate, decaying.final_learning_rate) == (500, 3e-4, 1e-6)
    assert constant.synthesis.pseudo_label_band == 0
    assert ssl_config(pseudo_label_band=2).synthesis.pseudo_label_band == 2


def test_init_from_a_bundle_with_another_unet_is_one_line():
    from singlestrip_bids.model.bundle import default_bundle_path

    small = TrainingConfig(unet=UNetConfig(levels=3, base_features=4, max_features=8))
    with pytest.raises(UserError, match="is not the one trained here") as error:
        initial_unet(small, default_bundle_path())
    assert "\n" not in str(error.value)


def test_group_level_on_three_mice_sizes_itself_and_warm_starts(tmp_path, capsys):
    """sub-01 ses-1 labeled; sub-02 and sub-03 ses-1 self-train; a few steps of everything."""
    from singlestrip_bids.cli.run import main
    from singlestrip_bids.model.bundle import load_bundle

    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps({"t2starw": {"session": "1"}}))
    out = tmp_path / "out"
    code = main([str(MOUSE), str(out), "group", "--labeled-subject", "01", "--participant-label", "01", "02", "03",
                 "--suffix", "T2starw", "--bids-filter-file", str(filters), "--skip-bids-validation",
                 "--train-steps", "2", "--ssl-steps", "2", "--ssl-learning-rate", "5e-5", "--qc-ae-steps", "2",
                 "--top-k", "1", "--ssl-ranking", "estimator", "--qc-estimator-steps", "2", "--device", "cpu",
                 "-w", str(tmp_path / "work")])
    assert code == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    console = captured.err.splitlines()  # one bar line per training phase, not one line per step
    assert any(line.startswith("U-Net [") and "2/2" in line for line in console) and len(console) < 40
    # scoring the unlabeled images is one bar on the console, each image's scores one line in the log
    assert any(line.startswith("pseudo-labels [") and "2/2" in line for line in console)
    assert not any("mL" in line and "estimated Dice" in line for line in console)
    log = next((out / "logs").glob("group-*.log")).read_text()
    assert "QC autoencoder step 2/2" in log and "U-Net step 2/2" in log
    assert "sub-02_ses-1_T2starw: AE-QC" in log and "sub-03_ses-1_T2starw: AE-QC" in log
    assert f"Log: {out / 'logs' / 'group-'}" in captured.out
    sl1 = load_bundle(out / "models" / "round-0")
    assert sl1.voxel_size == 2.8 and sl1.inference["head_margin_mm"] == pytest.approx(33.6)
    assert sl1.config["training"]["init"] == "default"
    assert sl1.config["training"]["synthesis"]["patch_sizes"] == [64, 80, 96]
    assert sl1.config["sizing"]["brain_extent_mm"] == 170.0
    assert sl1.qc_ae.config["spacing_mm"] == 2.8 and sl1.qc_ae.config["augmentation"]["shift_mm"] == pytest.approx(
        28 / 3, abs=1e-3)
    ssl = load_bundle(out / "models" / "round-1")
    assert ssl.voxel_size == 2.8 and ssl.config["training"]["steps"] == 2
    assert ssl.dice_estimator is not None and ssl.config["training"]["ranking"] == "estimator"
    assert ssl.config["training"]["learning_rate"] == 5e-5 and sl1.config["training"]["learning_rate"] == 1e-3
    assert sl1.config["training"]["final_learning_rate"] == 1e-5  # a warm start decays its rate
    assert ssl.config["training"]["final_learning_rate"] is None  # self-training keeps a constant rate
    selection = json.loads((out / "models" / "selection.json").read_text())
    assert selection["ranking"] == "estimator" and set(selection["mean_scores"]) == {"round-0", "round-1"}
    final = load_bundle(out / "models" / "final")
    assert final.model_id == load_bundle(out / "models" / selection["final"]).model_id
    rows = (out / "group_T2starw.tsv").read_text().splitlines()
    assert [row.split("\t")[0] for row in rows[1:]] and all("sub-01" not in row for row in rows[1:])
    assert len(rows) == 3  # header + sub-02, sub-03
