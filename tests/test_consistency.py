"""qc.consistency: masks of one subject's session must agree in volume; the demo's inverted contrast is flagged."""

import json

import pytest

from singlestrip_bids.qc.consistency import check_session_volumes, consistent, session_of, session_volume_ratios


def test_sessions_come_from_the_bids_name():
    assert session_of("sub-01_ses-2_acq-fast_T2w") == ("01", "2")
    assert session_of("sub-01_T1w") == ("01", "")


def test_each_mask_is_compared_with_the_median_of_its_sessions_others():
    volumes = {"sub-01_T1w": 1500.0, "sub-01_T2w": 1530.0, "sub-01_FLAIR": 1950.0,
               "sub-01_ses-2_T1w": 1400.0,  # alone in its session
               "sub-02_T1w": 1200.0, "sub-02_T2w": 0.0}  # an empty partner is no reference
    ratios = session_volume_ratios(volumes)
    assert set(ratios) == {"sub-01_T1w", "sub-01_T2w", "sub-01_FLAIR", "sub-02_T2w"}
    assert ratios["sub-01_FLAIR"] == pytest.approx(1950 / 1515)
    assert ratios["sub-01_T1w"] == pytest.approx(1500 / 1740)
    assert ratios["sub-02_T2w"] == 0.0
    assert [consistent(ratios[name]) for name in ("sub-01_T1w", "sub-01_T2w", "sub-01_FLAIR", "sub-02_T2w")] == \
        [True, True, False, False]
    assert consistent(1.2) and consistent(1 / 1.2) and not consistent(1.21) and not consistent(0.82)


def _qc_file(folder, name, volume, **scores):
    path = folder / f"{name}_desc-brain_qc.json"
    path.write_text(json.dumps({"bids_name": name, "brain_volume_ml": volume, **scores}))
    return path


def test_the_check_flags_the_odd_mask_and_leaves_lonely_ones_alone(tmp_path):
    files = [_qc_file(tmp_path, "sub-01_T1w", 1500.0, qc_pass=True),
             _qc_file(tmp_path, "sub-01_T2w", 1530.0, qc_pass=True),
             _qc_file(tmp_path, "sub-01_FLAIR", 1950.0, qc_pass=True), _qc_file(tmp_path, "sub-02_T1w", 900.0),
             _qc_file(tmp_path, "sub-03_T1w", 1500.0), _qc_file(tmp_path, "sub-03_T2w", 1900.0)]
    assert check_session_volumes(files) == ["sub-01_FLAIR", "sub-03_T1w", "sub-03_T2w"]
    documents = {path.name.split("_desc")[0]: json.loads(path.read_text()) for path in files}
    assert documents["sub-01_FLAIR"]["qc_pass"] is False and documents["sub-01_T1w"]["qc_pass"] is True
    assert documents["sub-01_FLAIR"]["session_volume_ratio"] == round(1950 / 1515, 3)
    assert documents["sub-01_T2w"]["session_volume_consistent"] is True
    assert documents["sub-02_T1w"] == {"bids_name": "sub-02_T1w", "brain_volume_ml": 900.0}  # untouched
    # two images that disagree: both flagged; without a QC network there is no qc_pass to set
    assert documents["sub-03_T2w"]["session_volume_consistent"] is False and "qc_pass" not in documents["sub-03_T2w"]
    again = check_session_volumes(files)  # a rerun on its own output changes nothing
    assert again == ["sub-01_FLAIR", "sub-03_T1w", "sub-03_T2w"]
    assert {path.name.split("_desc")[0]: json.loads(path.read_text()) for path in files} == documents


def test_the_demos_inverted_contrast_mask_is_flagged_beside_its_t1w(tmp_path, capsys):
    """The shipped model on the demo's sub-original: its inverted-contrast "T2w" mask takes in the
    skull and passes the autoencoder; beside the T1w mask of the same head it is flagged."""
    pytest.importorskip("pydeface", reason="the demo needs the demo extra (pydeface)")
    from singlestrip_bids.cli.demo import build_demo_dataset
    from singlestrip_bids.cli.run import main

    bids_dir = build_demo_dataset(tmp_path / "demo")
    out = tmp_path / "out"
    code = main([str(bids_dir), str(out), "participant", "--participant-label", "original", "--suffix", "T1w", "T2w",
                 "-w", str(tmp_path / "work"), "--device", "cpu", "--nprocs", "1"])
    assert code == 0
    anat = out / "sub-original" / "anat"
    t1 = json.loads((anat / "sub-original_desc-brain_qc.json").read_text())
    t2 = json.loads(next(anat.glob("sub-original_*T2w*_qc.json")).read_text())
    assert t2["brain_volume_ml"] > 1.2 * t1["brain_volume_ml"]
    assert t2["ae_dice"] >= t2["qc_threshold"]  # the shape score alone passes it
    assert t2["session_volume_consistent"] is False and t2["qc_pass"] is False
    assert t1["session_volume_ratio"] == pytest.approx(1 / t2["session_volume_ratio"], rel=1e-2)
    captured = capsys.readouterr()
    assert "sub-original_T2w: its brain mask" in captured.err + captured.out
    assert "flagged" in (out / "sub-original.html").read_text()
