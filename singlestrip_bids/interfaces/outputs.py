"""Outputs of the participant level: the derivatives of one image, the subject report."""


from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)


class _WriteDerivativesInputSpec(BaseInterfaceInputSpec):
    source_file = File(exists=True, mandatory=True, desc="the raw image inside bids_dir")
    bids_dir = Directory(exists=True, mandatory=True, desc="the input BIDS dataset")
    output_dir = traits.Str(mandatory=True, desc="the BIDS-Derivatives folder")
    mask_file = File(exists=True, mandatory=True, desc="brain mask (node output)")
    brain_file = File(exists=True, mandatory=True, desc="brain-extracted image (node output)")
    figure_file = File(exists=True, mandatory=True, desc="PNG mosaic (node output)")
    bids_meta = traits.Dict(desc="the source's BIDS metadata (sidecars, with inheritance)")
    settings = traits.Dict(desc="run settings recorded in the QC JSON (border_mm, ...)")
    steps = traits.Dict(mandatory=True, desc="StripImage statistics: step name → its statistics")


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

        outputs = write_image_derivatives(
            self.inputs.source_file, self.inputs.bids_dir, self.inputs.output_dir,
            mask_file=self.inputs.mask_file, brain_file=self.inputs.brain_file,
            figure_file=self.inputs.figure_file, steps=self.inputs.steps, bids_meta=self.inputs.bids_meta,
            settings=self.inputs.settings)
        self._results.update(source_file=self.inputs.source_file, mask_file=str(outputs.mask),
                             qc_file=str(outputs.qc_json))
        return runtime


class _SessionVolumesInputSpec(BaseInterfaceInputSpec):
    source_files = InputMultiObject(File(exists=True), mandatory=True, desc="one subject's raw images")
    qc_files = InputMultiObject(File(exists=True), mandatory=True, desc="their QC JSON files")


class _SessionVolumesOutputSpec(TraitedSpec):
    source_files = traits.List(File(exists=True), desc="the raw images, passed on once their QC JSONs are checked")
    flagged = traits.List(traits.Str, desc="BIDS names of the masks this check flagged")


class SessionVolumes(SimpleInterface):
    """``qc.consistency.check_session_volumes``: masks of one session must agree in volume."""

    input_spec = _SessionVolumesInputSpec
    output_spec = _SessionVolumesOutputSpec

    def _run_interface(self, runtime):
        from singlestrip_bids.qc.consistency import check_session_volumes

        self._results.update(source_files=list(self.inputs.source_files),
                             flagged=check_session_volumes(self.inputs.qc_files))
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
