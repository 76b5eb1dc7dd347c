"""Outputs of the participant level: the mask figure, the derivatives of one image, the subject report."""

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)


class _MaskFigureInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="the raw image")
    mask_file = File(exists=True, mandatory=True, desc="its brain mask (same grid)")


class _MaskFigureOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="PNG mosaic of the image with the mask outline")


class MaskFigure(SimpleInterface):
    """``report.figures.write_mask_figure`` on the image and mask in RAS order."""

    input_spec = _MaskFigureInputSpec
    output_spec = _MaskFigureOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nib

        from singlestrip_bids.io.nifti import load_image
        from singlestrip_bids.report.figures import canonical_arrays, write_mask_figure

        image, mask, sizes = canonical_arrays(load_image(self.inputs.in_file),
                                              nib.load(self.inputs.mask_file).dataobj)
        out_file = Path(runtime.cwd) / "mask.png"
        write_mask_figure(image, mask, out_file, voxel_sizes=sizes)
        self._results["out_file"] = str(out_file)
        return runtime


class _WriteDerivativesInputSpec(BaseInterfaceInputSpec):
    source_file = File(exists=True, mandatory=True, desc="the raw image inside bids_dir")
    bids_dir = Directory(exists=True, mandatory=True, desc="the input BIDS dataset")
    output_dir = traits.Str(mandatory=True, desc="the BIDS-Derivatives folder")
    mask_file = File(exists=True, mandatory=True, desc="brain mask (node output)")
    brain_file = File(exists=True, mandatory=True, desc="brain-extracted image (node output)")
    figure_file = File(exists=True, mandatory=True, desc="PNG mosaic (node output)")
    bids_meta = traits.Dict(desc="the source's BIDS metadata (sidecars, with inheritance)")
    settings = traits.Dict(desc="run settings recorded in the QC JSON (border_mm, ...)")
    conform_stats = traits.Dict(mandatory=True, desc="ConformImage statistics")
    predict_stats = traits.Dict(mandatory=True, desc="PredictProbability statistics")
    postprocess_stats = traits.Dict(mandatory=True, desc="PostprocessMask statistics")
    qc_stats = traits.Dict(desc="ScoreMask statistics (absent without a QC autoencoder)")


class _WriteDerivativesOutputSpec(TraitedSpec):
    source_file = File(desc="the raw image (passed on to the subject report)")
    mask_file = File(exists=True, desc="the derivative brain mask")
    qc_file = File(exists=True, desc="the per-image QC JSON")


class WriteDerivatives(SimpleInterface):
    """``io.outputs.write_image_derivatives``: named, atomic BIDS-Derivatives of one image."""

    input_spec = _WriteDerivativesInputSpec
    output_spec = _WriteDerivativesOutputSpec

    def _run_interface(self, runtime):
        from singlestrip_bids.io.outputs import write_image_derivatives

        steps = {"conform": self.inputs.conform_stats, "predict": self.inputs.predict_stats,
                 "postprocess": self.inputs.postprocess_stats}
        if self.inputs.qc_stats:
            steps["qc"] = self.inputs.qc_stats
        outputs = write_image_derivatives(
            self.inputs.source_file, self.inputs.bids_dir, self.inputs.output_dir,
            mask_file=self.inputs.mask_file, brain_file=self.inputs.brain_file,
            figure_file=self.inputs.figure_file, steps=steps, bids_meta=self.inputs.bids_meta,
            settings=self.inputs.settings)
        self._results.update(source_file=self.inputs.source_file, mask_file=str(outputs.mask),
                             qc_file=str(outputs.qc_json))
        return runtime


class _SubjectReportInputSpec(BaseInterfaceInputSpec):
    subject = traits.Str(mandatory=True, desc="participant label without 'sub-'")
    source_files = InputMultiObject(File(exists=True), mandatory=True, desc="the subject's raw images")
    bids_dir = Directory(exists=True, mandatory=True, desc="the input BIDS dataset")
    output_dir = traits.Str(mandatory=True, desc="the BIDS-Derivatives folder")


class _SubjectReportOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="output_dir/sub-<label>.html")


class SubjectReport(SimpleInterface):
    """``report.html.write_subject_report`` over the derivatives of the subject's images."""

    input_spec = _SubjectReportInputSpec
    output_spec = _SubjectReportOutputSpec

    def _run_interface(self, runtime):
        from singlestrip_bids.io.derivatives import image_outputs
        from singlestrip_bids.report.html import write_subject_report

        entries = [image_outputs(source, self.inputs.bids_dir, self.inputs.output_dir)
                   for source in self.inputs.source_files]
        out_file = write_subject_report(self.inputs.output_dir, self.inputs.subject, entries)
        self._results["out_file"] = str(out_file)
        return runtime
