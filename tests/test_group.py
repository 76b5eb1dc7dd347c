"""The group level end to end on a small real BIDS dataset: SL-1, AE-QC, self-training, reports."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers_bids import DATA_DIR, data_available, make_bids_dataset

from singlestrip_bids.io.bids import collect_images, find_labeled_mask

pytestmark = pytest.mark.skipif(not data_available(), reason=f"test data folder {DATA_DIR} is absent")
AE_SMALL = {"size": 16, "spacing_mm": 12.0, "channels": [8, 16], "latent": 16}


def _settings(**changes):
    from singlestrip_bids.model.unet import UNetConfig
    from singlestrip_bids.synthesis.generator import SynthesisConfig
    from singlestrip_bids.training.group import GroupSettings
    from singlestrip_bids.training.sl1 import TrainingConfig

    training = TrainingConfig(steps=2, voxel_size=8.0, unet=UNetConfig(levels=3, base_features=4, max_features=8),
                              synthesis=SynthesisConfig(patch_sizes=(32,)), seed=7, checkpoint_every=1)
    values = {"training": training, "ae_steps": 10, "ae_architecture": AE_SMALL, "top_k": 1, "rounds": 2,
              "estimator_steps": 3,
              "device": "cpu", "derive_sizes": False, "init": "scratch", **changes}
    return GroupSettings(**values)


@pytest.fixture(scope="module")
def bids(tmp_path_factory):
    """sub-01 (labeled, mask in derivatives/manual), sub-02 and sub-04 unlabeled; one T1w each."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("group") / "bids"
    make_bids_dataset(root, subjects=("01", "02", "04"), with_masks=True)
    for subject in ("02", "04"):  # only the labeled subject's mask is known
        shutil.rmtree(root / "derivatives" / "manual" / f"sub-{subject}")
    return root


@pytest.fixture(scope="module")
def run(bids, tmp_path_factory):
    from singlestrip_bids.training.group import run_group_level

    out = tmp_path_factory.mktemp("out")
    image, mask = find_labeled_mask(bids, "01")
    final = run_group_level(image, mask, collect_images(bids), out, out.parent / "work_a", _settings())
    return out, final


def _table(path):
    header, *lines = path.read_text().splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"))) for line in lines], header.split("\t")


def test_every_round_saves_a_bundle_with_the_qc_autoencoder(run):
    from singlestrip_bids.model.bundle import load_bundle

    out, final = run
    bundles = {name: load_bundle(out / "models" / name) for name in ("round-0", "round-1", "round-2", "final")}
    assert all(bundle.qc_ae is not None and bundle.dice_estimator is not None for bundle in bundles.values())
    estimator = bundles["round-0"].config["dice_estimator"]
    assert all(bundle.config["dice_estimator"] == estimator for bundle in bundles.values())  # one estimator
    assert bundles["round-0"].config["training"]["kind"] == "sl1"
    assert bundles["round-2"].config["training"]["round"] == 2
    assert len({bundles[name].model_id for name in ("round-0", "round-1", "round-2")}) == 3
    assert final == out / "models" / "final"
    rows, _ = _table(out / "group_T1w.tsv")
    # The final model is the round whose masks of the unlabeled images have the best mean AE-QC; round-0's
    # masks are the ones round 1 ranked, so its mean is that of the table's round-1 scores.
    selection = json.loads((out / "models" / "selection.json").read_text())
    means = selection["mean_scores"]
    assert selection["ranking"] == "ae" and list(means) == ["round-0", "round-1", "round-2"]
    assert means["round-0"] == pytest.approx(np.mean([float(row["ae_dice"]) for row in rows if row["round"] == "1"]),
                                             abs=1e-4)
    assert selection["final"] == max(means, key=means.get)
    assert bundles["final"].model_id == bundles[selection["final"]].model_id
    for round_number in (1, 2):
        chosen = [row["bids_name"] for row in rows if row["round"] == str(round_number) and row["selected"] == "1"]
        assert bundles[f"round-{round_number}"].config["training"]["pseudo_labels"] == chosen


def test_group_table_has_one_row_per_image_and_round(bids, run):
    out, _ = run
    mask_img = nib.load(find_labeled_mask(bids, "01")[1])
    labeled_ml = (np.asanyarray(mask_img.dataobj) > 0).sum() * abs(np.linalg.det(mask_img.affine[:3, :3])) / 1000
    rows, columns = _table(out / "group_T1w.tsv")
    assert columns == ["bids_name", "round", "ae_dice", "dice_estimate", "brain_volume_ml", "selected"]
    assert all(0.0 <= float(row["dice_estimate"]) <= 1.0 for row in rows)
    assert sorted((row["round"], row["bids_name"]) for row in rows) == [
        ("1", "sub-02_T1w"), ("1", "sub-04_T1w"), ("2", "sub-02_T1w"), ("2", "sub-04_T1w")]
    assert all(0.0 <= float(row["ae_dice"]) <= 1.0 and float(row["brain_volume_ml"]) >= 0 for row in rows)
    for round_number in ("1", "2"):
        ranked = [row for row in rows if row["round"] == round_number]  # best first
        usable = [row for row in ranked if 0.5 <= float(row["brain_volume_ml"]) / labeled_ml <= 2.0]
        assert [row["selected"] for row in ranked] == ["1"] * min(1, len(usable)) + ["0"] * (2 - min(1, len(usable)))
        assert [float(row["ae_dice"]) for row in usable] == sorted((float(row["ae_dice"]) for row in usable),
                                                                   reverse=True)
    ranking, _ = _table(out / "models" / "round-1" / "ranking.tsv")
    assert ranking == [row for row in rows if row["round"] == "1"]


def test_losses_report_and_figures(run):
    out, _ = run
    losses = json.loads((out / "models" / "losses.json").read_text())
    assert [len(losses[name]) for name in ("qc_ae", "round-0", "dice_estimator", "round-1", "round-2")] == [
        10, 2, 3, 2, 2]
    html = (out / "group_T1w.html").read_text()
    assert html.count("<svg") >= 5  # histogram + four loss curves
    for png in ("group_synthesis.png", "group_T1w_best-1.png", "group_T1w_worst-1.png"):
        assert (out / "figures" / png).read_bytes().startswith(b"\x89PNG") and f"figures/{png}" in html
    assert 'href="group_T1w.tsv"' in html
    # the figure's samples are logged: each replays through Draw.from_dict, and the seed decides them
    from singlestrip_bids.synthesis.generator import Draw

    draws = json.loads((out / "figures" / "group_synthesis.json").read_text())
    assert len(draws) == 6 and len({json.dumps(draw, sort_keys=True) for draw in draws}) == 6
    assert json.loads(json.dumps(Draw.from_dict(draws[0]).to_dict())) == draws[0]


def test_scores_are_deterministic_with_the_seed_and_rounds_can_be_zero(bids, run, tmp_path):
    from singlestrip_bids.model.bundle import load_bundle
    from singlestrip_bids.training.group import run_group_level

    out, _ = run
    image, mask = find_labeled_mask(bids, "01")
    again = tmp_path / "again"
    run_group_level(image, mask, collect_images(bids), again, tmp_path / "work", _settings(rounds=0))
    # Round 1 of the first run scored the SL-1 model's masks: so does round 0 here, identically.
    first = [row for row in _table(out / "group_T1w.tsv")[0] if row["round"] == "1"]
    rows = _table(again / "group_T1w.tsv")[0]
    assert [row["round"] for row in rows] == ["0", "0"] and all(row["selected"] == "0" for row in rows)
    keys = ("bids_name", "ae_dice", "brain_volume_ml")
    assert [[row[k] for k in keys] for row in rows] == [[row[k] for k in keys] for row in first]
    assert load_bundle(again / "models" / "final").model_id == load_bundle(out / "models" / "round-0").model_id
    assert not (again / "models" / "round-1").exists() and not (again / "models" / "selection.json").exists()


def test_cli_group_level_with_labeled_mask_and_tta_ranking(bids, tmp_path):
    from singlestrip_bids.cli.run import main
    from singlestrip_bids.inference.postprocess import largest_component
    from singlestrip_bids.model.bundle import load_bundle

    # The FreeSurfer mask carries two one-voxel islands, which a labeled mask may not have: keep the brain.
    manual = nib.load(bids / "derivatives" / "manual" / "sub-01" / "anat" / "sub-01_desc-brain_mask.nii.gz")
    brain, removed = largest_component(np.asanyarray(manual.dataobj) > 0)
    assert removed == 2
    labeled_mask = tmp_path / "sub-01_mask.nii.gz"
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), manual.affine), labeled_mask)
    out = tmp_path / "out"
    code = main([str(bids), str(out), "group", "--labeled-subject", "01", "--labeled-mask", str(labeled_mask),
                 "--skip-bids-validation",
                 "--train-steps", "1", "--ssl-steps", "2", "--working-voxel-size", "12", "--top-k", "5",
                 "--ssl-rounds", "1",
                 "--ssl-ranking", "tta", "--qc-ae-steps", "2", "--qc-estimator-steps", "2", "--device", "cpu",
                 "-w", str(tmp_path / "work")])
    assert code == 0
    for model in ("round-0", "round-1"):  # by default the labeled and pseudo-labeled images are shown as they are
        assert load_bundle(out / "models" / model).config["training"]["synthesis"]["real_image_probability"] == 0.5
    rows, columns = _table(out / "group_T1w.tsv")
    assert columns == ["bids_name", "round", "ae_dice", "tta_dice", "dice_estimate", "brain_volume_ml", "selected"]
    usable = [row for row in rows if float(row["brain_volume_ml"]) > 0]
    assert sum(row["selected"] == "1" for row in rows) == len(usable)  # top k capped at the usable masks
    assert all(0.0 <= float(row["tta_dice"]) <= 1.0 for row in rows)
    assert json.loads((out / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    assert load_bundle(out / "models" / "round-1").config["training"]["ranking"] == "tta"
    assert json.loads((out / "models" / "selection.json").read_text())["ranking"] == "tta"  # TTA chose the final


@pytest.mark.parametrize("extra, message", [
    ([], "--labeled-subject"),
    (["--labeled-subject", "01", "--ssl-ranking", "estimator", "--qc-estimator-steps", "0"],
     "--ssl-ranking estimator needs the Dice estimator: give"),
    (["--labeled-subject", "01"], "separate parts"),  # the raw FreeSurfer mask has islands
])
def test_cli_group_level_user_errors_are_one_line(bids, tmp_path, capsys, extra, message):
    from singlestrip_bids.cli.run import main

    code = main([str(bids), str(tmp_path / "out"), "group", "--skip-bids-validation", "-w", str(tmp_path / "w"),
                 *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "out" / "models").exists()


def test_cli_group_level_a_folder_it_cannot_make_is_one_line(bids, tmp_path, capsys):
    """A failure of the machine, not of the input (here: models/ is a file), ends in one line, exit 1."""
    from singlestrip_bids.cli.run import main

    labeled_mask = tmp_path / "sub-01_mask.nii.gz"
    manual = nib.load(bids / "derivatives" / "manual" / "sub-01" / "anat" / "sub-01_desc-brain_mask.nii.gz")
    from singlestrip_bids.inference.postprocess import largest_component

    nib.save(nib.Nifti1Image(largest_component(np.asanyarray(manual.dataobj) > 0)[0].astype(np.uint8),
                             manual.affine), labeled_mask)
    out = tmp_path / "out"
    out.mkdir()
    (out / "models").write_text("a file where the models folder belongs")
    code = main([str(bids), str(out), "group", "--labeled-subject", "01", "--labeled-mask", str(labeled_mask),
                 "--skip-bids-validation", "--train-steps", "1", "--working-voxel-size", "12", "--ssl-rounds", "0",
                 "--qc-ae-steps", "2", "--qc-estimator-steps", "0", "--device", "cpu", "-w", str(tmp_path / "work")])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("singlestrip_bids: error: ")]
    assert code == 1 and len(errors) == 1 and "Traceback" not in err, err
    assert str(out / "models") in errors[0] and "(run with -v for the traceback)" in errors[0]
