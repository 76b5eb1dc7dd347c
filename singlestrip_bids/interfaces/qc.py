"""Quality control of a predicted mask with the model bundle's QC networks (``qc.score``)."""

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits


class _ScoreMaskInputSpec(BaseInterfaceInputSpec):
    mask_file = File(exists=True, mandatory=True, desc="brain mask on the raw image's grid")
    conformed_file = File(exists=True, desc="the image on the working grid (ConformImage), for the Dice estimator")
    bundle_path = traits.Directory(exists=True, mandatory=True, desc="model bundle with a QC network")
    model_id = traits.Str(mandatory=True, desc="the bundle's model id: new weights invalidate cached results")


class _ScoreMaskOutputSpec(TraitedSpec):
    stats = traits.Dict(desc="ae_dice, dice_estimate, qc_score, qc_pass, qc_threshold, seconds")


class ScoreMask(SimpleInterface):
    """``qc.score.score_mask``: AE-QC Dice and estimated Dice of the mask, and its pass/flag verdict."""

    input_spec = _ScoreMaskInputSpec
    output_spec = _ScoreMaskOutputSpec

    def _run_interface(self, runtime):
        import time

        import nibabel as nib

        from singlestrip_bids.model.bundle import load_bundle
        from singlestrip_bids.qc.score import score_mask

        start = time.perf_counter()
        conformed = (nib.load(self.inputs.conformed_file).get_fdata(dtype="float32")
                     if self.inputs.conformed_file else None)
        stats = score_mask(nib.load(self.inputs.mask_file), load_bundle(self.inputs.bundle_path), conformed)
        self._results["stats"] = {**stats, "seconds": time.perf_counter() - start}
        return runtime
