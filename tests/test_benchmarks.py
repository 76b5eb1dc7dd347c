"""The benchmark's own machinery: tables, process measurement, case discovery and one tiny end-to-end run.

The benchmarks themselves (peers, full data, training) are not run here.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers_bids import DATA_DIR, data_available, make_bids_dataset

from singlestrip_bids.model.bundle import default_bundle_path, load_bundle

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import agreement  # noqa: E402
import border  # noqa: E402
import cases  # noqa: E402
import measure  # noqa: E402
import paper  # noqa: E402
import paper_tables  # noqa: E402
import table  # noqa: E402

needs_data = pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")


def row(image, method, status="ok", dice=None, hd95=None, seconds=None, contrast="T1w", reason=""):
    return {"image": image, "dataset": "d", "contrast": contrast, "method": method, "status": status,
            "reason": reason, "dice": dice, "hd95_mm": hd95, "inference_s": seconds, "process_s": seconds,
            "peak_rss_mb": 100.0 if status == "ok" else None, "reference_note": ""}


ROWS = [
    row("a", "ours", dice=0.9, hd95=3.0, seconds=1.0),
    row("b", "ours", dice=0.8, hd95=5.0, seconds=3.0, contrast="T2w"),
    row("c", "ours", dice=0.7, hd95=9.0, seconds=2.0),
    row("a", "peer", status="failed", reason="no weights"),
    row("b", "peer", dice=0.95, hd95=2.0, seconds=4.0, contrast="T2w"),
]


def test_summaries_take_medians_over_successful_rows_and_keep_reasons():
    by_method = {summary["method"]: summary for summary in table.summarize(ROWS)}
    assert by_method["ours"]["n"] == 3 and by_method["ours"]["n_ok"] == 3
    assert by_method["ours"]["dice_median"] == pytest.approx(0.8)
    assert by_method["ours"]["dice_min"] == pytest.approx(0.7)
    assert by_method["ours"]["hd95_median_mm"] == pytest.approx(5.0)
    assert by_method["ours"]["inference_median_s"] == pytest.approx(2.0)
    assert by_method["peer"]["n_ok"] == 1 and by_method["peer"]["dice_median"] == pytest.approx(0.95)
    assert by_method["peer"]["not_ok"] == ["failed: no weights"]
    by_contrast = table.summarize(ROWS, ("contrast", "method"))
    assert [(s["contrast"], s["method"], s["n"]) for s in by_contrast] == [
        ("T1w", "ours", 2), ("T2w", "ours", 1), ("T1w", "peer", 1), ("T2w", "peer", 1)]


def test_report_text_ends_with_the_per_method_table_naming_failures():
    text = table.report_text(ROWS)
    last = text.split("Per method")[-1]
    assert "ours" in last and "0.800" in last and "failed: no weights" in last
    assert text.index("Per image") < text.index("Per contrast") < text.index("Per method")
    lines = table.format_table([{"x": 1.23456, "y": None}, {"x": 123.0, "y": "z"}], ["x", "y"]).splitlines()
    assert lines == ["x      y", "-----  -", "1.235  -", "123.0  z"]


def test_results_are_written_as_json_and_csv(tmp_path):
    table.write_results(ROWS, tmp_path / "r.json", tmp_path / "r.csv", {"date_utc": "today"})
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["date_utc"] == "today" and len(saved["rows"]) == 5 and len(saved["summary"]) == 2
    with open(tmp_path / "r.csv") as handle:
        lines = list(csv.DictReader(handle))
    assert [line["method"] for line in lines] == ["ours", "ours", "ours", "peer", "peer"]
    assert lines[3]["status"] == "failed" and lines[3]["dice"] == ""
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no temporary left


def test_run_measured_reports_peak_memory_and_stops_at_the_time_limit():
    allocate = "import numpy as np; a = np.ones(40_000_000); print(a.sum())"  # 305 MiB
    result = measure.run_measured([sys.executable, "-c", allocate])
    assert result.returncode == 0 and result.stdout.strip() == "40000000.0" and not result.timed_out
    assert 305 < result.peak_rss_mb < 1000 and result.peak_tree_rss_mb >= result.peak_rss_mb
    slow = measure.run_measured([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=1.0)
    assert slow.timed_out and slow.returncode == -9 and slow.wall_s < 10
    failing = measure.run_measured([sys.executable, "-c", "import sys; sys.exit('bad input')"])
    assert failing.returncode == 1 and "bad input" in failing.stderr


def test_tree_rss_counts_children_that_are_never_waited_for():
    # A grandchild holding 229 MiB, left to init when its parent exits: ru_maxrss never sees it.
    code = ("import os, time, numpy as np\n"
            "if os.fork() == 0:\n"
            "    a = np.ones(30_000_000); time.sleep(4.0); os._exit(0)\n"
            "time.sleep(3.0)\n")  # generous: a loaded machine must still see the allocation
    result = measure.run_measured([sys.executable, "-c", code], poll_s=0.01)
    assert result.returncode == 0
    # ru_maxrss sees such an orphan only where the caller is a child subreaper (it depends on what
    # ran before in the process); the tree measurement must see it everywhere
    assert result.peak_tree_rss_mb > 229 and result.peak_tree_rss_mb >= result.peak_rss_mb


def test_thread_env_sets_every_thread_pool():
    env = measure.thread_env(3, base={"PATH": "/bin"})
    assert env["PATH"] == "/bin" and env["OMP_NUM_THREADS"] == env["NUMBA_NUM_THREADS"] == "3"


@needs_data
def test_shared_cases_list_every_image_with_a_reference_mask():
    found = cases.shared_cases(DATA_DIR)
    names = [case.name for case in found]
    assert len(found) == 17 and len(set(names)) == 17
    assert sum(case.dataset == "fs_training_t1" for case in found) == 5
    assert sorted(case.contrast for case in found if case.dataset == "ms_lesjak_longitudinal") == [
        "FLAIR", "FLAIR", "T1w", "T1w", "T2w", "T2w"]
    assert [case.contrast for case in found if case.dataset == "icbm152_2009c_2mm"] == ["T1w", "T2w", "PDw"]
    assert all(case.image.is_file() and case.reference.is_file() for case in found)
    assert [case.name for case in found if case.clean_reference] == ["colin27_ch2/ch2"]
    assert "niivue" not in " ".join(names)  # no reference masks there


@needs_data
def test_colin_reference_is_one_component_without_holes():
    from scipy import ndimage

    colin = next(case for case in cases.shared_cases(DATA_DIR) if case.name == "colin27_ch2/ch2")
    mask, img, sizes = cases.load_reference(colin)
    raw = np.asanyarray(img.dataobj) > 0
    assert ndimage.label(raw, structure=np.ones((3, 3, 3)))[1] > 1
    assert ndimage.label(mask, structure=np.ones((3, 3, 3)))[1] == 1
    assert np.array_equal(ndimage.binary_fill_holes(mask), mask)
    assert np.allclose(sizes, 1.0) and abs(int(mask.sum()) - int(raw.sum())) < 0.01 * raw.sum()


@needs_data
def test_bids_cases_use_the_apps_mask_names(tmp_path):
    root = make_bids_dataset(tmp_path / "ds", ("ms01", "mrtrix"), with_masks=True, sessions=("1",))
    found = {case.name: case for case in cases.discover(root)}
    assert sorted(found) == ["sub-mrtrix_ses-1_T1w", "sub-ms01_ses-1_FLAIR", "sub-ms01_ses-1_T1w",
                             "sub-ms01_ses-1_T2w"]
    assert found["sub-ms01_ses-1_T2w"].reference.name == "sub-ms01_ses-1_space-T2w_desc-brain_mask.nii.gz"
    assert found["sub-ms01_ses-1_T2w"].contrast == "T2w"


def test_qc_agreement():
    perfect = agreement.agreement([0.5, 0.7, 0.9], [0.6, 0.8, 1.0])
    assert perfect["pearson_r"] == pytest.approx(1.0) and perfect["mae"] == pytest.approx(0.1)
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["auc"] == 1.0  # 0.5, 0.7 bad; 0.9 good
    constant = agreement.agreement([0.9, 0.9], [0.5, 0.8])
    assert constant["pearson_r"] is None and constant["spearman"] is None  # constant score: undefined
    assert constant["auc"] is None  # no good mask to tell apart


def test_detection_auc_is_the_share_of_bad_good_pairs_ordered_right():
    # bad masks (true < 0.9) score 0.95 and 0.5; good ones 0.9 and 0.97: 3 of 4 pairs ordered, none tied
    assert agreement.detection_auc([0.95, 0.5, 0.9, 0.97], [0.7, 0.6, 0.92, 0.95]) == pytest.approx(0.75)
    assert agreement.detection_auc([0.9, 0.9], [0.5, 0.95]) == pytest.approx(0.5)  # a tie counts half
    # a monotone but nonlinear score: rank correlation 1, Pearson below it
    curved = agreement.agreement([0.1, 0.2, 0.3, 0.99], [0.6, 0.7, 0.8, 0.9])
    assert curved["spearman"] == pytest.approx(1.0) and curved["pearson_r"] < 0.9


@needs_data
def test_qc_eval_grades_images_other_than_the_labeled_one():
    import qc_eval
    from folds import animal

    labeled, graded = qc_eval.graded_cases("mouse", DATA_DIR, 2)
    assert labeled.name == "mouse_epi_sidneyp/sub-03/ses-1"  # fold 2's labeled mouse
    assert graded and all(case.reference is not None for case in graded)
    assert animal(labeled.name) not in {animal(case.name) for case in graded}
    assert len(graded) == 28 - 2  # every masked image of the other 14 animals
    human_labeled, human = qc_eval.graded_cases("human", DATA_DIR)
    assert human_labeled.name == "fs_training_t1/sub-01" and len(human) == len(qc_eval.HUMAN_CASES)
    with pytest.raises(SystemExit):  # a mouse run needs a bundle trained on the fold's labeled mouse
        qc_eval.parse_args(["--dataset", "mouse"])
    fetal_labeled, stacks = qc_eval.graded_cases("fetal", DATA_DIR)
    assert fetal_labeled.name == "fetal_t2w_mialsrtk/sub-01_run-1_T2w"  # the tutorial's labeled stack
    assert [case.name[-9:] for case in stacks] == [f"run-{run}_T2w" for run in range(2, 7)]
    with pytest.raises(SystemExit):
        qc_eval.graded_cases("fetal", Path("no-such-folder"))
    with pytest.raises(SystemExit):  # the shipped model carries no trained estimator to score with
        qc_eval.parse_args(["--model-estimator"])
    # the settings written to qc_eval.json: --peers is a list of paths
    args = qc_eval.parse_args(["--peers", "a/results.json", "b/results.json", "--out", "out"])
    assert json.loads(json.dumps(qc_eval.json_settings(args)))["peers"] == ["a/results.json", "b/results.json"]


def test_qc_eval_pool_summarises_several_runs_per_dataset_and_overall(tmp_path, capsys):
    import qc_eval

    def run(dataset, contrast, truths, estimates, ae3d=False):
        rows = [{"image": f"{dataset}/{n}", "contrast": contrast, "mask": "m", "origin": "corruption",
                 "true_dice": truth, "ae2d": 0.9 - n / 100, "estimator": estimate, "tta": None,
                 **({"ae3d": 0.8} if ae3d else {})} for n, (truth, estimate) in enumerate(zip(truths, estimates))]
        path = tmp_path / dataset / "qc_eval.json"
        path.parent.mkdir()
        scores = ["ae2d", *(["ae3d"] if ae3d else []), "estimator"]
        path.write_text(json.dumps({"settings": {"dataset": dataset}, "summary": dict.fromkeys(scores), "rows": rows}))
        return path

    human = run("human", "T1w", [0.95, 0.7, 0.85, 0.99], [0.94, 0.72, 0.80, 0.97], ae3d=True)
    mouse = run("mouse", "T2starw", [0.6, 0.96, 0.88], [0.65, 0.95, 0.92])
    assert qc_eval.main(["--pool", str(human), str(mouse), "--out", str(tmp_path / "pool")]) == 0
    assert "7 graded masks from 2 runs" in capsys.readouterr().out
    result = json.loads((tmp_path / "pool" / "qc_pool.json").read_text())
    estimator = result["summary"]["estimator"]
    assert estimator["all"]["n"] == 7 and estimator["human"]["n"] == 4 and estimator["mouse"]["n"] == 3
    assert estimator["all"]["mae"] == pytest.approx(np.mean([0.01, 0.02, 0.05, 0.02, 0.05, 0.01, 0.04]), abs=1e-3)
    assert result["summary"]["ae3d"]["all"]["n"] == 4  # only the run that measured it
    assert {row["dataset"] for row in result["rows"]} == {"human", "mouse"}
    with pytest.raises(SystemExit):
        qc_eval.parse_args(["--pool", str(tmp_path / "missing.json")])


@needs_data
def test_mouse_folds_split_by_animal():
    from folds import animal, make_folds

    folds = make_folds("mouse", DATA_DIR, 5)
    assert len(folds) == 5
    tested = [animal(case.name) for fold in folds for case in fold.test]
    assert sorted(set(tested)) == [f"sub-{n:02d}" for n in range(1, 16)]  # every animal tested once
    for fold in folds:
        held_out = {animal(case.name) for case in fold.test}
        pool = {animal(case.name) for case in fold.unlabeled}
        assert len(held_out) == 3 and not held_out & pool and animal(fold.labeled.name) not in held_out | pool
        assert all(case.reference is not None for case in fold.test)
    assert sum(len(fold.test) for fold in folds) == 28  # every masked image tested once
    assert len({animal(fold.labeled.name) for fold in folds}) == 5  # a different labeled mouse per fold
    assert sum(case.reference is None for fold in folds for case in fold.unlabeled) == 8  # 2 unmasked x 4 folds


def test_paper_quick_is_one_fold_on_the_shipped_model():
    from singlestrip_bids.model.bundle import default_bundle_path

    quick = paper.parse_args(["--quick", "--out", "x"])
    assert quick.sl1_model == default_bundle_path() and quick.folds == 1 and quick.ssl_steps == 150
    assert quick.models == ["SSL-AE", "SSL-TTA", "SSL-T"]
    full = paper.parse_args(["--out", "x"])
    assert full.sl1_model is None and full.folds == 5 and full.ssl_steps is None
    assert full.models == ["SSL-AE", "SSL-TTA", "SSL-T", "SSL-T scratch"]
    assert paper.parse_args(["--quick", "--ssl-steps", "20", "--out", "x"]).ssl_steps == 20


def test_paper_given_sl1_model_runs_the_one_fold_it_was_trained_for(capsys):
    # a fold's own SL-1 (--sl1-model OUT/fold-4/SL-1 --fold 4) keeps the five folds, so that fold 4 is run
    given = paper.parse_args(["--dataset", "mouse", "--sl1-model", "x", "--fold", "4", "--out", "y"])
    assert given.folds == 5 and given.fold == [4]
    with pytest.raises(SystemExit):
        paper.parse_args(["--dataset", "mouse", "--sl1-model", "x", "--fold", "2", "4", "--out", "y"])
    assert "give one --fold" in capsys.readouterr().err


def test_paper_fold_that_does_not_exist_is_an_error_not_an_empty_table(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        paper.main(["--dataset", "mouse", "--fold", "4", "7", "--out", str(tmp_path)])
    assert stopped.value.code == 2
    assert "--fold 7: there are 5 mouse folds" in capsys.readouterr().err
    assert not (tmp_path / "paper.json").exists()


def test_border_dice_moves_the_surface_by_whole_voxels_of_each_axis():
    box = np.zeros((40, 40, 40), bool)
    box[5:35, 5:35, 5:35] = True
    inner = np.zeros_like(box)
    inner[8:32, 8:32, 8:32] = True  # the box shrunk by 3 voxels
    assert border.border_dice(box, inner, (1.0, 1.0, 1.0), [-3.0, 0.0]) == pytest.approx(
        [1.0, 2 * 24**3 / (30**3 + 24**3)])
    unmoved, grown = border.border_dice(inner, box, (1.0, 1.0, 1.0), [0.0, 3.0])
    assert unmoved < grown < 1.0  # growing by a distance rounds the box's edges and corners
    flat = np.zeros_like(box)
    flat[8:32, 8:32, 6:34] = True  # with 3 mm slices, -3 mm takes one slice off each end
    assert border.border_dice(box, flat, (1.0, 1.0, 3.0), [-3.0]) == [1.0]
    assert border.border_dice(box, box, (3.0, 3.0, 3.0), [-2.0, 2.0]) == [1.0, 1.0]  # under a voxel: no change


def test_border_summary_leaves_out_the_excluded_images():
    records = [{"image": image, "contrast": "T1w", "method": "ours", "dice": {"-1.0": low, "0.0": high}}
               for image, low, high in (("a", 0.9, 0.8), ("b", 0.7, 0.9), ("ds/sub-labeled", 0.1, 0.1))]
    summary = border.summarize_borders(records, [-1.0, 0.0], ["labeled"])
    assert [(s["statistic"], s["n"]) for s in summary] == [("mean", 2), ("min", 2)]
    assert summary[0]["dice"] == pytest.approx({"-1.0": 0.8, "0.0": 0.85})
    assert summary[1]["dice"] == pytest.approx({"-1.0": 0.7, "0.0": 0.8})


@needs_data
def test_run_py_scores_a_bids_dataset_and_reports_a_missing_peer(tmp_path, tiny_bundle):
    root = make_bids_dataset(tmp_path / "ds", ("mrtrix",), with_masks=True)
    out = tmp_path / "out"
    command = [sys.executable, str(BENCHMARKS / "run.py"), "--data", str(root), "--out", str(out),
               "--model", str(tiny_bundle), "--methods", "singlestrip:tiny", "deepbet",
               "--peers-python", str(tmp_path / "no-venv" / "python"), "--threads", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["method"], r["status"]) for r in rows] == [("singlestrip:tiny", "ok"), ("deepbet", "unavailable")]
    ours, peer = rows
    assert 0.0 <= ours["dice"] <= 1.0 and ours["peak_rss_mb"] > 50 and ours["process_s"] >= ours["inference_s"] > 0
    image = nib.load(root / "sub-mrtrix" / "anat" / "sub-mrtrix_T1w.nii.gz")
    mask = nib.load(ours["mask_path"])
    assert mask.shape == image.shape and np.allclose(mask.affine, image.affine)
    assert "no-venv" in peer["reason"]
    assert (out / "results.csv").read_text().count("\n") == 3
    assert result.stdout.rstrip().splitlines()[-1].startswith("deepbet")  # the tables come last
    assert "figure skipped" in result.stdout

    swept = subprocess.run([sys.executable, str(BENCHMARKS / "border.py"), str(out), "--borders", "2", "0", "-2"],
                           capture_output=True, text=True, timeout=300, check=False)
    assert swept.returncode == 0, swept.stderr
    (record,) = json.loads((out / "border.json").read_text())["images"]
    assert record["method"] == "singlestrip:tiny" and list(record["dice"]) == ["-2.0", "0.0", "2.0"]
    assert record["dice"]["0.0"] == pytest.approx(ours["dice"], abs=1e-4)  # border 0 is run.py's own score


@needs_data
def test_speed_py_takes_the_median_of_rounds_and_reports_a_missing_peer(tmp_path, tiny_bundle):
    out = tmp_path / "speed"
    command = [sys.executable, str(BENCHMARKS / "speed.py"), "--subjects", "1", "--skip-participant",
               "--repeats", "2", "--peers", "deepbet", "--peers-python", str(tmp_path / "no-venv" / "python"),
               "--model", str(tiny_bundle), "--threads", "1", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "speed.json").read_text())
    ours, peer = result["methods"]["singlestrip"], result["methods"]["deepbet"]
    assert ours["status"] == "ok" and ours["runs"] == 2
    assert ours["inference_min_s"] <= ours["inference_s"] <= ours["inference_max_s"]
    assert ours["process_s"] > ours["inference_s"] > 0
    assert peer["status"].startswith("unavailable") and "no-venv" in peer["status"]
    assert [target["target"] for target in result["targets"]] == ["peak RSS <= 2048 MB (1 mm head, one process)"]
    assert "round 2/2 done" in done.stdout


@needs_data
def test_paper_quick_runs_a_fold_end_to_end_on_one_image(tmp_path):
    """The shipped SL-1, its pseudo-label of the MRtrix head with its AE score and estimated Dice, two SSL
    models (by AE-QC and by the Dice estimator)."""
    out = tmp_path / "paper"
    command = [sys.executable, str(BENCHMARKS / "paper.py"), "--quick", "--ssl-steps", "2",
               "--models", "SSL-AE", "SSL-estimator", "--estimator-steps", "2",
               "--only", "mrtrix", "--data", str(DATA_DIR), "--out", str(out), "--device", "cpu"]
    shipped = sorted(path.name for path in default_bundle_path().iterdir())
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "SSL-AE" in done.stdout and "paper r" in done.stdout
    assert any(line.startswith("U-Net [") and " 2/2 " in line for line in done.stderr.splitlines()), done.stderr
    assert any(line.startswith("Dice estimator [") and " 2/2 " in line for line in done.stderr.splitlines())
    result = json.loads((out / "paper.json").read_text())
    models = {row["model"]: row for row in result["rows"]}
    assert set(models) == {"SL-1", "SSL-AE", "SSL-estimator", paper_tables.QC_CHOSEN}
    # the estimator joined a copy of the given SL-1: the shipped bundle is as it was
    assert sorted(path.name for path in default_bundle_path().iterdir()) == shipped
    assert load_bundle(out / "fold-1" / "SL-1").dice_estimator is not None
    chosen = models[paper_tables.QC_CHOSEN]  # the group level's final model: one of the two, by mean AE-QC
    assert chosen["dice"] == models[chosen["chosen"]]["dice"] and chosen["chosen"] in ("SL-1", "SSL-AE")
    assert models["SL-1"]["image"] == "mrtrix_scripttest_sub01/sub-01_T1w"
    assert models["SL-1"]["dice"] > 0.75  # the shipped model, not an untrained one
    (qc,) = result["qc_rows"]
    assert 0.0 < qc["ae_dice"] <= 1.0 and qc["true_dice"] == models["SL-1"]["dice"]
    assert 0.0 <= qc["dice_estimate"] <= 1.0
    assert "estimator" in done.stdout.split("QC score vs true Dice")[1]
    assert qc["tta_dice"] is None  # TTA (10 predictions an image) is scored only for SSL-TTA
    # each self-trained model checkpoints under its own name, so that --resume continues the right one
    assert (out / "fold-1" / "work" / "singlestrip_group" / "ssl-ae.ckpt").is_file()

    # --resume takes the fold from fold-1/rows.json (no training: a second); --peers adds run.py's rows
    peers = tmp_path / "results.json"
    peers.write_text(json.dumps({"rows": [
        {**row("mrtrix_scripttest_sub01/sub-01_T1w", "hd-bet", dice=0.91, hd95=4.0)},
        {**row("mrtrix_scripttest_sub01/sub-01_T1w", "deepbet", status="failed", dice=None)},
        {**row("someone/else", "deepbet", dice=0.99)}]}))
    again = subprocess.run([*command, "--resume", "--peers", str(peers)], capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "taken from" in again.stdout and "fine-tuning" not in again.stdout
    rows = json.loads((out / "paper.json").read_text())["rows"]
    ours = ("SL-1", "SSL-AE", "SSL-estimator", paper_tables.QC_CHOSEN)
    assert [(r["model"], r["dice"]) for r in rows if r["model"] not in ours] == [("HD-BET (fast)", 0.91)]
    assert "HD-BET (fast)" in again.stdout


def test_per_fold_table_leaves_a_model_a_fold_did_not_run_empty():
    rows = [{"fold": 1, "model": "SL-1", "dice": 0.8}, {"fold": 1, "model": "SSL-T", "dice": 0.9},
            {"fold": 2, "model": "SL-1", "dice": 0.7}, {"fold": 2, "model": "deepbet", "dice": 0.95}]
    lines = paper_tables.per_fold_table(rows).splitlines()
    assert lines[0].split() == ["fold", "SL-1", "SSL-T", "deepbet"]
    assert lines[2].split() == ["1", "0.800", "0.900", "-"] and lines[3].split() == ["2", "0.700", "-", "0.950"]


def test_models_py_scores_bundles_by_name_and_folder_on_a_bids_dataset(tmp_path, tiny_bundle):
    root = make_bids_dataset(tmp_path / "ds", ("mrtrix",), with_masks=True)
    out = tmp_path / "out"
    command = [sys.executable, str(BENCHMARKS / "models.py"), "--data", str(root), "--out", str(out),
               "--models", "default", str(tiny_bundle)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "models.json").read_text())
    (only,) = document["rows"]
    assert set(document["bundles"]) == {"default", "tiny"}
    assert only["dice_default"] > 0.9 > only["dice_tiny"]  # the shipped model strips this head; noise does not
    assert document["means"][0]["mean_dice_default"] == only["dice_default"]


@needs_data
def test_warm_start_py_cuts_one_run_into_a_curve_per_init(tmp_path):
    """Two inits, cut at 1 and 2 steps on two of fold 1's held-out mice: the shipped model alone is step 0."""
    out = tmp_path / "warm"
    command = [sys.executable, str(BENCHMARKS / "warm_start.py"), "--inits", "scratch", "default", "--steps", "1",
               "2", "--fold", "1", "--cases", "2", "--data", str(DATA_DIR), "--out", str(out), "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((out / "warm_start.json").read_text())["rows"]
    held_out = {row["image"] for row in rows}
    assert len(held_out) == 2 and all(row["fold"] == 1 for row in rows)  # --cases 2 of the fold's 6
    assert sorted({(row["init"], row["step"]) for row in rows}) == [
        ("default", 0), ("default", 1), ("default", 2), ("scratch", 1), ("scratch", 2)]
    dice = {(row["init"], row["step"]): [] for row in rows}
    for row in rows:
        dice[row["init"], row["step"]].append(row["dice"])
    assert np.mean(dice["default", 0]) > 0.7  # the shipped model strips mice, an untrained one does not
    assert np.mean(dice["scratch", 2]) < 0.7
    assert (out / "fold-1" / "default" / "step-2" / "bundle.json").is_file()
    lines = done.stdout.splitlines()
    header = next(number for number, line in enumerate(lines) if line.startswith("init "))
    assert lines[header].split()[1:] == ["step", "0", "step", "1", "step", "2"]
    assert [line.split()[0] for line in lines[header + 1:header + 3]] == ["scratch", "default"]
    assert lines[header + 1].split()[1] == "-"  # no step 0 from random weights


def test_speed_breakdown_averages_the_steps_of_the_qc_files(tmp_path):
    import speed

    for name, timings in (("sub-01", {"conform": 1.0, "predict": 2.0, "qc": 0.5}),
                          ("sub-02", {"conform": 3.0, "predict": 4.0})):
        path = tmp_path / name / "anat" / f"{name}_desc-brain_qc.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"provenance": {"timings_s": timings}}))
    assert speed.step_breakdown(tmp_path) == {"conform": 2.0, "predict": 3.0, "qc": 0.25}


def test_speed_takes_per_run_the_round_of_median_wall_time():
    import speed

    rounds = [{"2 processes": {"wall_s": wall, "peak_rss_mb": peak}} for wall, peak in ((12.0, 1.0), (10.0, 2.0),
                                                                                       (11.0, 3.0))]
    assert speed.median_round(rounds) == {"2 processes": {"wall_s": 11.0, "peak_rss_mb": 3.0,
                                                          "wall_s_rounds": [12.0, 10.0, 11.0]}}
