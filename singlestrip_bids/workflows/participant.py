"""The participant-level Nipype workflow: strip every selected image, then report per subject.

Per image (one sub-workflow each, named after the image): ``strip`` (conform → predict →
postprocess → [QC] → figure, in memory, in one node) → ``write_derivatives``; per subject: the
session check of the masks' volumes (``qc.consistency``), then one HTML report over the subject's
images. One heavy node per image: a split would buy only reruns of the conform step (0.6 s) and
cost a file round trip and a hand-over between workers at every step.
"""

import re
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from singlestrip_bids.interfaces.outputs import SessionVolumes, SubjectReport, WriteDerivatives
from singlestrip_bids.interfaces.strip import StripImage


def init_participant_wf(*, images, output_dir, bids_dir, bundle_path, device, border_mm, omp_nthreads,
                        bundle_config=None, bids_meta=None, precision="auto", name="participant_wf"):
    """Build the workflow that strips ``images`` and writes their derivatives and reports.

    Parameters
    ----------
    images : list of path
        Raw images inside ``bids_dir`` (3D or 4D NIfTI), any subjects.
    output_dir : path
        BIDS-Derivatives folder the outputs are written to.
    bids_dir : path
        The input BIDS dataset (read only).
    bundle_path : path
        Model bundle folder; its QC autoencoder or Dice estimator, when present, scores every mask.
    bundle_config : dict, optional
        Its checked ``bundle.json`` (``model.bundle.check_bundle``; read here when not given). The
        weights are loaded only in the nodes, so building and running the workflow needs no torch.
    device : {"auto", "cpu", "cuda"}
        Torch device of the prediction.
    border_mm : float
        Grow (> 0) or shrink (< 0) the masks by this distance (mm).
    omp_nthreads : int
        Threads of one prediction (also its ``n_procs`` for the MultiProc scheduler).
    bids_meta : dict, optional
        Source path (str) → its BIDS metadata, copied into the QC JSON.
    precision : {"auto", "fp32", "bf16"}
        Forward-pass precision of the prediction (``inference.predict.Predictor``).
    name : str
        Workflow name (its folder in the work directory).

    Inputs
    ------
    None: the images are parameters, so that each gets its own named sub-workflow.

    Outputs
    -------
    mask_files : list of str
        Derivative brain masks, in the order of ``images``.
    qc_files : list of str
        Per-image QC JSON files, in the order of ``images``.
    report_files : list of str
        ``output_dir/sub-<label>.html``, one per subject (sorted by label).
    """
    from singlestrip_bids.io.derivatives import split_bids_name
    from singlestrip_bids.model.bundle import check_bundle

    bundle_config = bundle_config or check_bundle(bundle_path)
    images = [Path(image) for image in images]
    subjects = sorted({split_bids_name(image.name)[0]["sub"] for image in images})
    bids_meta = bids_meta or {}

    workflow = pe.Workflow(name=name)
    outputnode = pe.Node(niu.IdentityInterface(fields=["mask_files", "qc_files", "report_files"]),
                         name="outputnode")
    merge_masks = pe.Node(niu.Merge(len(images)), name="merge_masks", run_without_submitting=True)
    merge_qc = pe.Node(niu.Merge(len(images)), name="merge_qc", run_without_submitting=True)
    merge_reports = pe.Node(niu.Merge(len(subjects)), name="merge_reports", run_without_submitting=True)

    connections = []
    for subject_index, subject in enumerate(subjects, start=1):
        subject_images = [image for image in images if split_bids_name(image.name)[0]["sub"] == subject]
        sources = pe.Node(niu.Merge(len(subject_images)), name=f"sources_sub_{subject}",
                          run_without_submitting=True)
        qc_files = pe.Node(niu.Merge(len(subject_images)), name=f"qc_sub_{subject}", run_without_submitting=True)
        # Always rerun, as write_derivatives (which rewrites the QC JSONs) does.
        session_volumes = pe.Node(SessionVolumes(), name=f"session_volumes_sub_{subject}",
                                  run_without_submitting=True, overwrite=True)
        report = pe.Node(SubjectReport(subject=subject, bids_dir=str(bids_dir), output_dir=str(output_dir)),
                         name=f"report_sub_{subject}", run_without_submitting=True, overwrite=True)
        for source_index, image in enumerate(subject_images, start=1):
            image_index = images.index(image) + 1
            image_wf = init_image_wf(bundle_config=bundle_config, bundle_path=bundle_path, device=device,
                                     border_mm=border_mm, omp_nthreads=omp_nthreads, bids_dir=bids_dir,
                                     output_dir=output_dir, precision=precision, name=image_workflow_name(image))
            image_wf.inputs.inputnode.source_file = str(image)
            image_wf.inputs.inputnode.bids_meta = bids_meta.get(str(image), {})
            connections += [
                (image_wf, sources, [("outputnode.source_file", f"in{source_index}")]),
                (image_wf, qc_files, [("outputnode.qc_file", f"in{source_index}")]),
                (image_wf, merge_masks, [("outputnode.mask_file", f"in{image_index}")]),
                (image_wf, merge_qc, [("outputnode.qc_file", f"in{image_index}")]),
            ]
        connections += [
            (sources, session_volumes, [("out", "source_files")]),
            (qc_files, session_volumes, [("out", "qc_files")]),
            (session_volumes, report, [("source_files", "source_files")]),
            (report, merge_reports, [("out_file", f"in{subject_index}")]),
        ]
    connections += [
        (merge_masks, outputnode, [("out", "mask_files")]),
        (merge_qc, outputnode, [("out", "qc_files")]),
        (merge_reports, outputnode, [("out", "report_files")]),
    ]
    workflow.connect(connections)
    return workflow


def init_image_wf(*, bundle_config, bundle_path, device, border_mm, omp_nthreads, bids_dir, output_dir,
                  precision="auto", name="image_wf"):
    """Strip one raw image and write its derivatives (mask, brain image, sidecars, QC JSON, figure).

    Parameters
    ----------
    bundle_config : dict
        The bundle's checked ``bundle.json`` (model id, working grid).
    bundle_path, device, border_mm, omp_nthreads, bids_dir, output_dir, precision
        As in ``init_participant_wf``.
    name : str
        Workflow name.

    Inputs
    ------
    source_file : str
        The raw image inside ``bids_dir``.
    bids_meta : dict
        Its BIDS metadata (for the QC JSON).

    Outputs
    -------
    source_file : str
        The raw image, passed on once its derivatives are written.
    mask_file : str
        The derivative brain mask.
    qc_file : str
        The QC JSON.
    """
    from singlestrip_bids.model.bundle import bundle_inference, bundle_model_id

    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["source_file", "bids_meta"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["source_file", "mask_file", "qc_file"]), name="outputnode")
    strip = pe.Node(StripImage(bundle_path=str(bundle_path), model_id=bundle_model_id(bundle_config), device=device,
                               precision=precision, num_threads=omp_nthreads, border_mm=border_mm),
                    name="strip", n_procs=omp_nthreads, mem_gb=2.0)
    settings = {"border_mm": border_mm, "device_requested": device, "precision_requested": precision,
                "working_voxel_size_mm": float(bundle_inference(bundle_config)["voxel_size_mm"])}
    # Always rerun (cheap copies): derivatives deleted from output_dir are rewritten from the work dir.
    write = pe.Node(WriteDerivatives(bids_dir=str(bids_dir), output_dir=str(output_dir), settings=settings),
                    name="write_derivatives", run_without_submitting=True, overwrite=True)
    connections = [
        (inputnode, strip, [("source_file", "in_file")]),
        (inputnode, write, [("source_file", "source_file"), ("bids_meta", "bids_meta")]),
        (strip, write, [("mask_file", "mask_file"), ("brain_file", "brain_file"), ("figure_file", "figure_file"),
                        ("stats", "steps")]),
        (write, outputnode, [("source_file", "source_file"), ("mask_file", "mask_file"), ("qc_file", "qc_file")]),
    ]
    workflow.connect(connections)
    return workflow


def image_workflow_name(image: Path) -> str:
    """A Nipype-safe name from the image's BIDS name: ``sub-01_T1w.nii.gz`` → ``sub_01_T1w_wf``."""
    return re.sub(r"\W", "_", image.name.split(".")[0]) + "_wf"
