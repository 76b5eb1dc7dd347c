"""The three per-image steps of ``inference.strip`` as Nipype interfaces (files in the node folder)."""

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits


class _ConformInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="raw image, 3D or 4D NIfTI/MGZ")
    voxel_size = traits.Float(mandatory=True, desc="working voxel size (mm)")
    multiple = traits.Int(mandatory=True, desc="working-grid sizes are multiples of this (voxels)")


class _ConformOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="the image on the working grid (float32 NIfTI)")
    stats = traits.Dict(desc="nonfinite_voxels, seconds")


class ConformImage(SimpleInterface):
    """``inference.strip.conform_file``: native image → RAS working grid."""

    input_spec = _ConformInputSpec
    output_spec = _ConformOutputSpec

    def _run_interface(self, runtime):
        from singlestrip_bids.inference.strip import conform_file

        out_file = Path(runtime.cwd) / "conformed.nii"
        stats = conform_file(self.inputs.in_file, out_file, voxel_size=self.inputs.voxel_size,
                             multiple=self.inputs.multiple)
        self._results.update(out_file=str(out_file), stats=stats)
        return runtime


class _PredictInputSpec(BaseInterfaceInputSpec):
    conformed_file = File(exists=True, mandatory=True, desc="output of ConformImage")
    bundle_path = traits.Directory(exists=True, mandatory=True, desc="model bundle folder")
    model_id = traits.Str(mandatory=True, desc="the bundle's model id: new weights invalidate cached results")
    device = traits.Enum("auto", "cpu", "cuda", usedefault=True, desc="torch device")
    precision = traits.Enum("auto", "fp32", "bf16", usedefault=True, desc="forward-pass precision")
    num_threads = traits.Int(1, usedefault=True, desc="torch CPU threads")


class _PredictOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="P(brain) on the working grid (float32 NIfTI, [0, 1])")
    stats = traits.Dict(desc="device, precision, model_id, seconds")


class PredictProbability(SimpleInterface):
    """``inference.strip.predict_file``: brain probability from the U-Net."""

    input_spec = _PredictInputSpec
    output_spec = _PredictOutputSpec

    def _run_interface(self, runtime):
        import torch

        from singlestrip_bids.inference.strip import predict_file

        torch.set_num_threads(self.inputs.num_threads)
        out_file = Path(runtime.cwd) / "probability.nii"
        stats = predict_file(self.inputs.conformed_file, out_file, bundle_path=self.inputs.bundle_path,
                             device=self.inputs.device, precision=self.inputs.precision)
        self._results.update(out_file=str(out_file), stats=stats)
        return runtime


class _PostprocessInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="the raw image (its grid and header are kept)")
    prob_file = File(exists=True, mandatory=True, desc="output of PredictProbability")
    border_mm = traits.Float(0.0, usedefault=True, desc="grow (> 0) or shrink (< 0) the mask (mm)")
    threshold = traits.Float(mandatory=True, desc="P(brain) at or above which a voxel is brain (the bundle's)")


class _PostprocessOutputSpec(TraitedSpec):
    mask_file = File(exists=True, desc="uint8 0/1 brain mask on the raw image's grid")
    brain_file = File(exists=True, desc="the raw image times the mask")
    stats = traits.Dict(desc="brain_volume_ml, n_components_removed, seconds")


class PostprocessMask(SimpleInterface):
    """``inference.strip.postprocess_file``: native grid, threshold, largest component, holes, border."""

    input_spec = _PostprocessInputSpec
    output_spec = _PostprocessOutputSpec

    def _run_interface(self, runtime):
        from singlestrip_bids.inference.strip import postprocess_file

        mask_file = Path(runtime.cwd) / "mask.nii.gz"
        brain_file = Path(runtime.cwd) / "brain.nii.gz"
        stats = postprocess_file(self.inputs.in_file, self.inputs.prob_file, mask_file, brain_file,
                                 border_mm=self.inputs.border_mm, threshold=self.inputs.threshold)
        self._results.update(mask_file=str(mask_file), brain_file=str(brain_file), stats=stats)
        return runtime
