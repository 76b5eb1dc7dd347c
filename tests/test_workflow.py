"""workflows.participant: the graph it builds, and a real run that a rerun reuses from the work dir."""

import json
import shutil
import time

import nibabel as nib
import numpy as np
import pytest
from helpers_bids import DATA_DIR, data_available, make_bids_dataset

from singlestrip_bids.errors import UserError
from singlestrip_bids.io.derivatives import image_outputs
from singlestrip_bids.model.bundle import load_bundle, save_bundle
from singlestrip_bids.workflows.execution import check_plugin, run_workflow
from singlestrip_bids.workflows.participant import init_participant_wf

HEAVY_NODES = ("strip",)  #: the one node per image that computes; write_derivatives only copies


def build(bundle, bids_dir, images, tmp_path, **kwargs):
    settings = {"output_dir": tmp_path / "out", "bids_dir": bids_dir, "bundle_path": bundle, "device": "cpu",
                "border_mm": 0.0, "omp_nthreads": 1, **kwargs}
    return init_participant_wf(images=images, **settings)


@pytest.fixture
def skeleton(tmp_path):
    """A BIDS tree of empty placeholder files: enough to build (not run) the graph."""
    names = ["sub-01/anat/sub-01_T1w.nii.gz", "sub-01/ses-2/anat/sub-01_ses-2_acq-fast_T2w.nii.gz",
             "sub-02/func/sub-02_task-rest_run-1_bold.nii.gz"]
    root = tmp_path / "skeleton"
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()
    return root, [root / name for name in names]


def test_graph_per_image_and_per_subject(skeleton, tmp_path, tiny_bundle):
    root, images = skeleton
    workflow = build(tiny_bundle, root, images, tmp_path, omp_nthreads=3)
    names = set(workflow.list_node_names())
    for image_wf in ("sub_01_T1w_wf", "sub_01_ses_2_acq_fast_T2w_wf", "sub_02_task_rest_run_1_bold_wf"):
        for step in (*HEAVY_NODES, "write_derivatives"):
            assert f"{image_wf}.{step}" in names
    assert {"report_sub_01", "report_sub_02", "merge_masks", "merge_qc", "merge_reports"} <= names
    image_wf = workflow.get_node("sub_01_T1w_wf")
    bundle = load_bundle(tiny_bundle)
    assert image_wf.inputs.inputnode.source_file == str(images[0])
    strip = image_wf.get_node("strip")
    assert strip.n_procs == 3 and strip.inputs.num_threads == 3
    assert strip.inputs.model_id == bundle.model_id and strip.inputs.bundle_path == str(tiny_bundle)
    assert sorted(image_wf.list_node_names()) == ["inputnode", "outputnode", "strip", "write_derivatives"]
    # sub-01's report waits for its two images, sub-02's for one.
    senders = {name: {edge[0].name for edge in workflow._graph.in_edges(workflow.get_node(name))}
               for name in ("sources_sub_01", "sources_sub_02")}
    assert senders == {"sources_sub_01": {"sub_01_T1w_wf", "sub_01_ses_2_acq_fast_T2w_wf"},
                       "sources_sub_02": {"sub_02_task_rest_run_1_bold_wf"}}
    # the report waits for the session check of the subject's QC JSONs
    qc_senders = {edge[0].name for edge in workflow._graph.in_edges(workflow.get_node("qc_sub_01"))}
    assert qc_senders == {"sub_01_T1w_wf", "sub_01_ses_2_acq_fast_T2w_wf"}
    report_senders = {edge[0].name for edge in workflow._graph.in_edges(workflow.get_node("report_sub_01"))}
    assert report_senders == {"session_volumes_sub_01"}


def test_the_driver_builds_the_graph_without_torch(skeleton, tmp_path, tiny_bundle):
    """Only the nodes load the model: the run's own process starts in a second, not after torch's import."""
    import subprocess
    import sys

    root, images = skeleton
    code = ("import sys\n"
            "from singlestrip_bids.model.bundle import check_bundle\n"
            "from singlestrip_bids.workflows.participant import init_participant_wf\n"
            f"config = check_bundle({str(tiny_bundle)!r})\n"
            f"init_participant_wf(images={[str(image) for image in images]!r}, output_dir={str(tmp_path / 'out')!r}, "
            f"bids_dir={str(root)!r}, bundle_path={str(tiny_bundle)!r}, bundle_config=config, device='cpu', "
            "border_mm=0.0, omp_nthreads=1)\n"
            "print(sorted(name for name in sys.modules if name.split('.')[0] == 'torch')[:3])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")
def test_a_bundle_without_qc_network_strips_without_scores(tmp_path, tiny_bundle):
    import torch

    torch.set_num_threads(1)
    plain = save_bundle(tmp_path / "plain", name="plain", unet=load_bundle(tiny_bundle).unet, voxel_size=4.0)
    bids_dir = make_bids_dataset(tmp_path / "ds", subjects=("mrtrix",))
    image = bids_dir / "sub-mrtrix" / "anat" / "sub-mrtrix_T1w.nii.gz"
    run_workflow(build(plain, bids_dir, [image], tmp_path), work_dir=tmp_path / "work", plugin="Linear")
    qc = json.loads((tmp_path / "out" / "sub-mrtrix" / "anat" / "sub-mrtrix_desc-brain_qc.json").read_text())
    assert set(qc["provenance"]["timings_s"]) == {"conform", "predict", "postprocess", "figure"}
    assert "ae_dice" not in qc and "qc_pass" not in qc


def test_check_plugin():
    for name in ("Linear", "MultiProc", "SLURM", "SGE", "PBS"):
        check_plugin(name)
    with pytest.raises(UserError, match="unknown Nipype plugin 'Slurm'.*SLURM"):
        check_plugin("Slurm")


def _result_times(work, workflow_name):
    """Node name → modification time of its result file (unchanged when the node was not rerun)."""
    return {path.parent.name: path.stat().st_mtime_ns
            for path in (work / workflow_name).rglob("result_*.pklz")}


@pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")
def test_run_then_rerun_reuses_the_work_dir(tmp_path, tiny_bundle):
    """A second run re-executes only the writers; new weights re-execute the image's strip node."""
    import torch

    torch.set_num_threads(1)
    bids_dir = make_bids_dataset(tmp_path / "ds", subjects=("mrtrix",))
    image = bids_dir / "sub-mrtrix" / "anat" / "sub-mrtrix_T1w.nii.gz"
    work, out = tmp_path / "work", tmp_path / "out"

    def run(bundle):
        start = time.perf_counter()
        run_workflow(build(bundle, bids_dir, [image], tmp_path), work_dir=work, plugin="Linear")
        return time.perf_counter() - start

    first = run(tiny_bundle)
    mask = out / "sub-mrtrix" / "anat" / "sub-mrtrix_desc-brain_mask.nii.gz"
    qc = json.loads((out / "sub-mrtrix" / "anat" / "sub-mrtrix_desc-brain_qc.json").read_text())
    assert mask.is_file() and (out / "sub-mrtrix.html").is_file()
    assert {"ae_dice", "qc_pass", "brain_volume_ml"} <= set(qc)
    assert set(qc["provenance"]["timings_s"]) == {"conform", "predict", "postprocess", "qc", "figure"}
    before = _result_times(work, "participant_wf")
    assert set(HEAVY_NODES) <= set(before)

    mask.unlink()  # a deleted output comes back from the work dir
    second = run(tiny_bundle)
    after = _result_times(work, "participant_wf")
    assert {node: after[node] for node in HEAVY_NODES} == {node: before[node] for node in HEAVY_NODES}
    assert after["write_derivatives"] != before["write_derivatives"]
    assert mask.is_file()
    print(f"first run {first:.1f} s, rerun {second:.1f} s")
    assert second < first

    torch.manual_seed(1)
    retrained = load_bundle(tiny_bundle).unet
    for parameter in retrained.parameters():
        parameter.data.normal_()
    other = save_bundle(tmp_path / "retrained", name="tiny", unet=retrained, voxel_size=4.0,
                        qc_ae=load_bundle(tiny_bundle).qc_ae)
    run(other)
    final = _result_times(work, "participant_wf")
    assert final["strip"] != before["strip"]
    new_qc = json.loads((out / "sub-mrtrix" / "anat" / "sub-mrtrix_desc-brain_qc.json").read_text())
    assert new_qc["provenance"]["model_id"] == load_bundle(other).model_id != qc["provenance"]["model_id"]
    assert np.asarray(nib.load(mask).dataobj).dtype == np.uint8


@pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")
def test_embedded_in_a_parent_pipeline_its_outputnode_gives_the_outputs(tmp_path, tiny_bundle):
    """As a step of an fMRIPrep-style pipeline: a downstream node receives the masks, QC files and reports."""
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    mice = DATA_DIR / "mouse_epi_sidneyp"
    images = [mice / f"sub-0{n}/ses-1/anat/sub-0{n}_ses-1_T2starw.nii.gz" for n in (1, 2)]
    participant_wf = build(tiny_bundle, mice, images, tmp_path)

    def record(mask_files, qc_files, report_files, out_file):
        import json

        with open(out_file, "w") as handle:
            json.dump({"masks": mask_files, "qc": qc_files, "reports": report_files}, handle)
        return out_file

    downstream = pe.Node(niu.Function(input_names=["mask_files", "qc_files", "report_files", "out_file"],
                                      output_names=["out_file"], function=record), name="downstream")
    downstream.inputs.out_file = str(tmp_path / "received.json")
    parent = pe.Workflow(name="parent_wf")
    parent.connect(participant_wf, "outputnode.mask_files", downstream, "mask_files")
    parent.connect(participant_wf, "outputnode.qc_files", downstream, "qc_files")
    parent.connect(participant_wf, "outputnode.report_files", downstream, "report_files")
    run_workflow(parent, work_dir=tmp_path / "work", plugin="Linear")
    received = json.loads((tmp_path / "received.json").read_text())
    out = tmp_path / "out"
    assert received["masks"] == [str(out / f"sub-0{n}/ses-1/anat/sub-0{n}_ses-1_space-T2starw_desc-brain_mask.nii.gz")
                                 for n in (1, 2)]
    assert [path.rsplit("/", 1)[1] for path in received["qc"]] == [
        f"sub-0{n}_ses-1_space-T2starw_desc-brain_qc.json" for n in (1, 2)]
    assert received["reports"] == [str(out / "sub-01.html"), str(out / "sub-02.html")]


@pytest.mark.skipif(not data_available(), reason=f"real test data not found at {DATA_DIR}")
def test_a_bundle_with_a_dice_estimator_gives_the_estimate_and_the_verdict(tmp_path, tiny_bundle):
    from singlestrip_bids.model.bundle import add_dice_estimator, load_bundle
    from singlestrip_bids.model.estimator import estimator_from_unet

    bundle = tmp_path / "with_estimator"
    shutil.copytree(tiny_bundle, bundle)
    add_dice_estimator(bundle, estimator_from_unet(load_bundle(tiny_bundle).unet))
    mice = DATA_DIR / "mouse_epi_sidneyp"
    image = mice / "sub-01/ses-1/anat/sub-01_ses-1_T2starw.nii.gz"
    workflow = build(bundle, mice, [image], tmp_path)
    run_workflow(workflow, work_dir=tmp_path / "work", plugin="Linear")
    qc = json.loads(image_outputs(image, mice, tmp_path / "out").qc_json.read_text())
    assert 0.0 <= qc["dice_estimate"] <= 1.0 and 0.0 <= qc["ae_dice"] <= 1.0
    assert qc["qc_score"] == "dice_estimate" and qc["qc_threshold"] == 0.9
    assert qc["qc_pass"] == (qc["dice_estimate"] >= 0.9)
