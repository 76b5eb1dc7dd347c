"""One image stripped, scored and drawn in one node (the steps hand arrays on, not files)."""

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits


class _StripInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="raw image, 3D or 4D NIfTI/MGZ")
    bundle_path = traits.Directory(exists=True, mandatory=True, desc="model bundle folder")
    model_id = traits.Str(mandatory=True, desc="the bundle's model id: new weights invalidate cached results")
    device = traits.Enum("auto", "cpu", "cuda", usedefault=True, desc="torch device")
    precision = traits.Enum("auto", "fp32", "bf16", usedefault=True, desc="forward-pass precision")
    num_threads = traits.Int(1, usedefault=True, desc="CPU threads (torch, BLAS, OpenMP)")
    border_mm = traits.Float(0.0, usedefault=True, desc="grow (> 0) or shrink (< 0) the mask (mm)")


class _StripOutputSpec(TraitedSpec):
    mask_file = File(exists=True, desc="uint8 0/1 brain mask on the raw image's grid")
    brain_file = File(exists=True, desc="the raw image times the mask")
    figure_file = File(exists=True, desc="PNG mosaic of the image with the mask outline")
    stats = traits.Dict(desc="step (conform, predict, postprocess, qc when the bundle has a QC network, "
                             "figure) → its statistics, each with seconds")


class StripImage(SimpleInterface):
    """``inference.strip.strip_image``, then ``qc.score.score_mask`` on the mask and the conformed image
    in memory, then ``report.figures.write_mask_figure``; the model is loaded once per worker process."""

    input_spec = _StripInputSpec
    output_spec = _StripOutputSpec

    def _run_interface(self, runtime):
        import time

        from singlestrip_bids.inference.predict import get_predictor
        from singlestrip_bids.inference.strip import strip_image
        from singlestrip_bids.io.atomic import atomic_write_nifti
        from singlestrip_bids.model.device import set_thread_count
        from singlestrip_bids.report.figures import canonical_arrays, write_mask_figure

        set_thread_count(self.inputs.num_threads)
        inputs, cwd = self.inputs, Path(runtime.cwd)
        stripped = strip_image(inputs.in_file, bundle_path=inputs.bundle_path, device=inputs.device,
                               border_mm=inputs.border_mm, precision=inputs.precision)
        mask_file, brain_file, figure_file = cwd / "mask.nii.gz", cwd / "brain.nii.gz", cwd / "mask.png"
        mask_img = stripped.mask_image()
        atomic_write_nifti(mask_img, mask_file)
        atomic_write_nifti(stripped.brain_image(), brain_file)
        stats = dict(stripped.stats)
        bundle = get_predictor(inputs.bundle_path, inputs.device, inputs.precision).bundle
        if bundle.qc_ae is not None or bundle.dice_estimator is not None:
            from singlestrip_bids.qc.score import score_mask

            start = time.perf_counter()
            scores = score_mask(mask_img, bundle, stripped.conformed.data)
            stats["qc"] = {**scores, "seconds": time.perf_counter() - start}
        start = time.perf_counter()
        image, mask, sizes = canonical_arrays(stripped.image, stripped.mask)
        write_mask_figure(image, mask, figure_file, voxel_sizes=sizes)
        stats["figure"] = {"seconds": time.perf_counter() - start}
        self._results.update(mask_file=str(mask_file), brain_file=str(brain_file), figure_file=str(figure_file),
                             stats=stats)
        return runtime
